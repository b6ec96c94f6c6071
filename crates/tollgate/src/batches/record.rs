//! What the store keeps of files and batches, and the OpenAI objects the
//! API shows of them. A leaf: the store persists these types, so nothing
//! here reaches back into the store or the server.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// An uploaded (or produced) file, without its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// `file-…`.
    pub id: String,
    /// The principal id that uploaded it (`key:…`, a JWT subject, `master`).
    pub owner: String,
    /// Unix seconds.
    pub created_at: u64,
    pub filename: String,
    /// `batch` for inputs, `batch_output` for the output and error files.
    pub purpose: String,
    pub bytes: u64,
}

impl FileRecord {
    /// OpenAI's file object.
    pub fn object(&self) -> Value {
        json!({
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": null,
            "expires_at": null,
        })
    }
}

/// A batch's lifecycle, as OpenAI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Validating,
    InProgress,
    Finalizing,
    Completed,
    Failed,
    Cancelling,
    Cancelled,
    Expired,
}

impl Status {
    /// Nothing more will happen to a batch in one of these.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled | Status::Expired)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Validating => "validating",
            Status::InProgress => "in_progress",
            Status::Finalizing => "finalizing",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelling => "cancelling",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
        }
    }
}

/// One error of a batch that could not run (OpenAI's `errors.data[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchError {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub line: Option<u64>,
}

/// A batch as stored. The creator's credential is kept beside it, sealed,
/// and is never part of this record, so no route can show it by mistake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// `batch_…`.
    pub id: String,
    pub owner: String,
    pub endpoint: String,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: Status,
    #[serde(default)]
    pub output_file_id: Option<String>,
    #[serde(default)]
    pub error_file_id: Option<String>,
    #[serde(default)]
    pub errors: Vec<BatchError>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Unix seconds, like every `*_at`.
    pub created_at: u64,
    pub expires_at: u64,
    #[serde(default)]
    pub in_progress_at: Option<u64>,
    #[serde(default)]
    pub finalizing_at: Option<u64>,
    #[serde(default)]
    pub completed_at: Option<u64>,
    #[serde(default)]
    pub failed_at: Option<u64>,
    #[serde(default)]
    pub expired_at: Option<u64>,
    #[serde(default)]
    pub cancelling_at: Option<u64>,
    #[serde(default)]
    pub cancelled_at: Option<u64>,
    /// Lines in the input file.
    pub total: u64,
    /// Kept by the store beside the record (one row per finished line), so
    /// a status change never overwrites a count: these are filled on load.
    #[serde(default)]
    pub completed: u64,
    #[serde(default)]
    pub failed: u64,
}

impl BatchRecord {
    /// OpenAI's batch object.
    pub fn object(&self) -> Value {
        let errors = if self.errors.is_empty() {
            Value::Null
        } else {
            let data: Vec<Value> = self
                .errors
                .iter()
                .map(|e| json!({ "code": e.code, "message": e.message, "param": null, "line": e.line }))
                .collect();
            json!({ "object": "list", "data": data })
        };
        json!({
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": errors,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status.as_str(),
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": self.in_progress_at,
            "expires_at": self.expires_at,
            "finalizing_at": self.finalizing_at,
            "completed_at": self.completed_at,
            "failed_at": self.failed_at,
            "expired_at": self.expired_at,
            "cancelling_at": self.cancelling_at,
            "cancelled_at": self.cancelled_at,
            "request_counts": { "total": self.total, "completed": self.completed, "failed": self.failed },
            "metadata": self.metadata,
        })
    }
}

/// The result of one line, as the output or error file will hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineResult {
    /// 0-based position in the input file.
    pub line: u64,
    /// Whether it goes to the output file (a 2xx answer) or the error file.
    pub ok: bool,
    /// The whole JSONL line, without its newline.
    pub json: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_object_has_openai_fields_and_no_owner() {
        let b = BatchRecord {
            id: "batch_1".into(),
            owner: "key:secret-owner".into(),
            endpoint: "/v1/chat/completions".into(),
            input_file_id: "file-1".into(),
            completion_window: "24h".into(),
            status: Status::InProgress,
            output_file_id: None,
            error_file_id: None,
            errors: vec![],
            metadata: None,
            created_at: 10,
            expires_at: 10 + 86_400,
            in_progress_at: Some(11),
            finalizing_at: None,
            completed_at: None,
            failed_at: None,
            expired_at: None,
            cancelling_at: None,
            cancelled_at: None,
            total: 3,
            completed: 1,
            failed: 1,
        };
        let o = b.object();
        assert_eq!(o["object"], "batch");
        assert_eq!(o["status"], "in_progress");
        assert_eq!(o["request_counts"], json!({ "total": 3, "completed": 1, "failed": 1 }));
        assert_eq!(o["errors"], Value::Null);
        assert!(!o.to_string().contains("secret-owner"), "the owner is not shown");
        let back: BatchRecord = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back, b);
    }
}
