//! Deployment files: the Helm chart (rendered and validated against the
//! Kubernetes schemas by deploy/helm/check.py, with `kubernetes-validate`
//! from PyPI; its ConfigMap's config then loaded by tollgate itself) and
//! the Dockerfile's structure (a container build cannot run here).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::common::{Harness, config};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python with the chart check's packages (deploy/helm/requirements.txt),
/// installed by scripts/test into the repository's .venv.
fn python() -> PathBuf {
    std::env::var_os("TOLLGATE_TEST_PYTHON").map_or_else(|| repo().join(".venv/bin/python"), PathBuf::from)
}

#[test]
fn the_helm_chart_renders_to_valid_kubernetes_manifests_and_a_valid_config() {
    let out_dir = tempfile::tempdir().unwrap();
    let py = python();
    let out = std::process::Command::new(&py)
        .arg(repo().join("deploy/helm/check.py"))
        .arg("--emit-config")
        .arg(out_dir.path())
        .output()
        .unwrap_or_else(|e| {
            panic!("{} is needed (pip install -r deploy/helm/requirements.txt; scripts/test does): {e}", py.display())
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "chart check failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l.ends_with(" passed, 0 failed")), "{stdout}");
    assert!(stdout.contains("ServiceMonitor") && stdout.contains("HorizontalPodAutoscaler"), "{stdout}");

    // Every variant's config loads in tollgate, with the environment the
    // Deployment gives it.
    let env: HashMap<String, String> = [
        ("TOLLGATE_STORE_URL", "postgres://tollgate@postgres:5432/tollgate"),
        ("TOLLGATE_REDIS_URL", "rediss://:pw@redis:6379/0"),
        ("TOLLGATE_NATS_URL", "tls://nats:4222"),
        ("TOLLGATE_NATS_TOKEN", "token"),
        ("POD_NAME", "tollgate-7d9f-abcde"),
        ("TOLLGATE_MASTER_KEY", "master-key-for-the-test"),
        ("OPENAI_API_KEY", "sk-test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for variant in ["defaults", "everything-on", "single-instance"] {
        let path = out_dir.path().join(format!("{variant}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let shared = tollgate::state::Shared::default();
        let snap = tollgate::config::load::load_text(&text, variant, 1, &shared, env.clone())
            .unwrap_or_else(|e| panic!("{variant}: the chart's config does not load:\n{e}"));
        assert_eq!(snap.distributed.is_some(), variant != "single-instance", "{variant}");
        if let Some(d) = &snap.distributed {
            assert_eq!(d.instance_id, "tollgate-7d9f-abcde");
            assert_eq!(d.nats_tls, variant == "everything-on" || d.nats_url.starts_with("tls://"));
        }
    }
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_and_health_checked() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "a build stage and a small runtime stage: {froms:?}");
    let last = froms.last().unwrap();
    assert!(last.contains("distroless") || last.contains("scratch"), "small runtime image: {last}");
    let after_last = &lines[lines.iter().position(|l| l == *last).unwrap()..];
    let user = after_last.iter().find_map(|l| l.strip_prefix("USER ")).expect("a USER in the runtime stage");
    assert!(!user.starts_with('0') && !user.starts_with("root"), "non-root: {user}");
    assert!(
        after_last.iter().any(|l| l.starts_with("HEALTHCHECK") && text.contains("\"probe\"")),
        "HEALTHCHECK via probe"
    );
    assert!(after_last.iter().any(|l| l.starts_with("ENTRYPOINT") && l.contains("tollgate")));
    assert!(text.contains("cargo build --release --locked"), "a reproducible build");
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target/"), "the build context leaves out target/");
}

#[tokio::test]
async fn the_health_probe_the_image_runs_succeeds_on_a_serving_gateway() {
    use std::process::ExitCode;
    let h = Harness::start(&config("http://127.0.0.1:9", "")).await;
    assert_eq!(tollgate::cli_probe::run(&h.url("/health")).await, ExitCode::SUCCESS);
    assert_eq!(tollgate::cli_probe::run(&h.url("/ready")).await, ExitCode::SUCCESS);
    let port = h.gw.data_addr.port();
    h.gw.shutdown().await;
    assert_eq!(tollgate::cli_probe::run(&format!("http://127.0.0.1:{port}/health")).await, ExitCode::FAILURE);
}
