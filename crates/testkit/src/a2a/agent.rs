//! The agent itself: what it does with a message, decided by the message's
//! text, and the tasks it keeps (in memory) so they can be read, listed,
//! canceled and subscribed to afterwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::model::{Artifact, Event, Msg, Status, Task, TaskState};

/// The pause between the events of a `stream` task.
const CHUNK_GAP: Duration = Duration::from_millis(20);

/// An A2A error; the server writes it as JSON-RPC or as an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum A2aError {
    Parse,
    InvalidRequest,
    MethodNotFound,
    InvalidParams(&'static str),
    TaskNotFound,
    NotCancelable,
    Unsupported(&'static str),
}

impl A2aError {
    pub(crate) fn code(&self) -> i64 {
        match self {
            A2aError::Parse => -32700,
            A2aError::InvalidRequest => -32600,
            A2aError::MethodNotFound => -32601,
            A2aError::InvalidParams(_) => -32602,
            A2aError::TaskNotFound => -32001,
            A2aError::NotCancelable => -32002,
            A2aError::Unsupported(_) => -32004,
        }
    }

    pub(crate) fn message(&self) -> &'static str {
        match self {
            A2aError::Parse => "Parse error",
            A2aError::InvalidRequest => "Invalid Request",
            A2aError::MethodNotFound => "Method not found",
            A2aError::InvalidParams(m) | A2aError::Unsupported(m) => m,
            A2aError::TaskNotFound => "Task not found",
            A2aError::NotCancelable => "Task cannot be canceled",
        }
    }

    /// The HTTP status and `google.rpc.Code` name the REST binding answers with.
    pub(crate) fn http(&self) -> (u16, &'static str) {
        match self {
            A2aError::TaskNotFound | A2aError::MethodNotFound => (404, "NOT_FOUND"),
            A2aError::NotCancelable => (409, "FAILED_PRECONDITION"),
            A2aError::Unsupported(_) => (400, "UNIMPLEMENTED"),
            A2aError::Parse | A2aError::InvalidRequest | A2aError::InvalidParams(_) => (400, "INVALID_ARGUMENT"),
        }
    }
}

/// The caller's message, reduced to what the agent looks at.
pub(crate) struct UserMsg {
    pub(crate) id: Option<String>,
    pub(crate) context_id: Option<String>,
    pub(crate) text: String,
}

/// What a send produced: a message, a task, or (streaming) its events.
pub(crate) enum Reply {
    Message(Msg),
    Task(Task),
    Stream(mpsc::UnboundedReceiver<Event>),
}

struct Entry {
    seq: u64,
    task: Task,
    /// Open streams on the task; dropped when it ends, which ends them.
    subs: Vec<mpsc::UnboundedSender<Event>>,
}

#[derive(Default)]
pub(crate) struct Agent {
    tasks: Mutex<HashMap<String, Entry>>,
    next: AtomicU64,
}

impl Agent {
    fn new_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }

    pub(crate) fn send(self: &Arc<Self>, m: UserMsg, streaming: bool) -> Reply {
        let context_id = m.context_id.unwrap_or_else(|| self.new_id("ctx"));
        let echo = format!("echo: {}", m.text);
        if m.text.contains("direct") {
            let reply = Msg { id: self.new_id("msg"), context_id, task_id: None, from_agent: true, text: echo };
            if !streaming {
                return Reply::Message(reply);
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(Event::Message(reply));
            return Reply::Stream(rx);
        }
        let id = self.new_id("task");
        let user = Msg {
            id: m.id.unwrap_or_else(|| self.new_id("msg")),
            context_id: context_id.clone(),
            task_id: Some(id.clone()),
            from_agent: false,
            text: m.text.clone(),
        };
        let mut task = Task {
            id: id.clone(),
            context_id,
            status: Status::new(TaskState::Submitted),
            artifacts: Vec::new(),
            history: vec![user],
        };
        let slow = m.text.contains("slow");
        if !streaming {
            if slow {
                task.status = Status::new(TaskState::Working);
            } else {
                task.artifacts.push(Artifact { id: self.new_id("artifact"), name: "echo".into(), texts: vec![echo] });
                task.status = Status::new(TaskState::Completed);
            }
            self.insert(task.clone(), Vec::new());
            return Reply::Task(task);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(Event::Task(task.clone()));
        self.insert(task, vec![tx]);
        tokio::spawn(self.clone().work(id, m.text, slow));
        Reply::Stream(rx)
    }

    fn insert(&self, task: Task, subs: Vec<mpsc::UnboundedSender<Event>>) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        self.tasks.lock().expect("lock").insert(task.id.clone(), Entry { seq, task, subs });
    }

    /// A streamed task's life after `submitted`; it stops early if the task is canceled.
    async fn work(self: Arc<Self>, id: String, text: String, slow: bool) {
        if !self.update(&id, |t| set_state(t, TaskState::Working)) || slow {
            return; // a slow task stays working until it is canceled
        }
        let chunks: Vec<(String, String)> = if text.contains("stream") {
            (0..3).map(|i| ("stream".to_string(), format!("chunk {i}: {text}"))).collect()
        } else {
            vec![(self.new_id("artifact"), format!("echo: {text}"))]
        };
        let name = if text.contains("stream") { "stream" } else { "echo" };
        let n = chunks.len();
        for (i, (artifact_id, chunk)) in chunks.into_iter().enumerate() {
            tokio::time::sleep(CHUNK_GAP).await;
            let (append, last_chunk) = (i > 0, i + 1 == n);
            let artifact = Artifact { id: artifact_id, name: name.into(), texts: vec![chunk] };
            if !self.update(&id, |t| add_chunk(t, artifact, append, last_chunk)) {
                return;
            }
        }
        tokio::time::sleep(CHUNK_GAP).await;
        self.update(&id, |t| set_state(t, TaskState::Completed));
    }

    /// Changes a live task and tells its streams; false once it has ended.
    fn update(&self, id: &str, change: impl FnOnce(&mut Task) -> Event) -> bool {
        let mut tasks = self.tasks.lock().expect("lock");
        let Some(e) = tasks.get_mut(id).filter(|e| !e.task.status.state.terminal()) else { return false };
        let ev = change(&mut e.task);
        e.subs.retain(|s| s.send(ev.clone()).is_ok());
        if e.task.status.state.terminal() {
            e.subs.clear();
        }
        true
    }

    pub(crate) fn get(&self, id: &str) -> Result<Task, A2aError> {
        self.tasks.lock().expect("lock").get(id).map(|e| e.task.clone()).ok_or(A2aError::TaskNotFound)
    }

    /// Newest first, optionally of one context.
    pub(crate) fn list(&self, context_id: Option<&str>) -> Vec<Task> {
        let tasks = self.tasks.lock().expect("lock");
        let mut found: Vec<&Entry> =
            tasks.values().filter(|e| context_id.is_none_or(|c| e.task.context_id == c)).collect();
        found.sort_by_key(|e| std::cmp::Reverse(e.seq));
        found.into_iter().map(|e| e.task.clone()).collect()
    }

    pub(crate) fn cancel(&self, id: &str) -> Result<Task, A2aError> {
        let state = self.get(id)?.status.state;
        if state.terminal() || !self.update(id, |t| set_state(t, TaskState::Canceled)) {
            return Err(A2aError::NotCancelable);
        }
        self.get(id)
    }

    /// A stream of a live task: the task as it is now, then its updates.
    pub(crate) fn subscribe(&self, id: &str) -> Result<mpsc::UnboundedReceiver<Event>, A2aError> {
        let mut tasks = self.tasks.lock().expect("lock");
        let e = tasks.get_mut(id).ok_or(A2aError::TaskNotFound)?;
        if e.task.status.state.terminal() {
            return Err(A2aError::Unsupported("Task is in a terminal state"));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(Event::Task(e.task.clone()));
        e.subs.push(tx);
        Ok(rx)
    }
}

fn set_state(t: &mut Task, state: TaskState) -> Event {
    t.status = Status::new(state);
    Event::Status { task_id: t.id.clone(), context_id: t.context_id.clone(), status: t.status.clone() }
}

/// Adds a chunk to the task's artifact (replacing it unless `append`), as the SDK's task manager does.
fn add_chunk(t: &mut Task, chunk: Artifact, append: bool, last_chunk: bool) -> Event {
    match t.artifacts.iter_mut().find(|a| a.id == chunk.id) {
        Some(a) if append => a.texts.extend(chunk.texts.iter().cloned()),
        Some(a) => *a = chunk.clone(),
        None => t.artifacts.push(chunk.clone()),
    }
    Event::Artifact { task_id: t.id.clone(), context_id: t.context_id.clone(), artifact: chunk, append, last_chunk }
}
