//! The real `tollgate` binary: check, serve with SIGHUP reload, demo.

use crate::common::free_port;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

#[test]
fn check_prints_every_error_with_its_position_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "server:\n  listen: nowhere\nauth:\n  master_key: \"${TOLLGATE_TEST_UNSET_VAR}\"\nproviders:\n  - { name: a, type: groq }\n",
    )
    .unwrap();
    let out = Command::new(BIN).args(["check", "--config"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let path = bad.display().to_string();
    assert!(err.contains(&format!("{path}:4:16: error: environment variable `TOLLGATE_TEST_UNSET_VAR` (written `${{TOLLGATE_TEST_UNSET_VAR}}`) is not set")), "{err}");

    std::fs::write(
        &bad,
        "server:\n  listen: nowhere\nproviders:\n  - { name: a, type: groq }\n  - { name: a, type: mock }\n",
    )
    .unwrap();
    let out = Command::new(BIN).args(["check", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{path}:2:11: error: server.listen `nowhere` is not an address")), "{err}");
    assert!(err.contains(&format!("{path}:4:13: error: provider `a` of type `groq` needs an api_key")), "{err}");
    assert!(err.contains(&format!("{path}:5:13: error: duplicate provider name `a`")), "{err}");
    assert!(err.contains("3 error(s)"), "{err}");

    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "auth: { master_key: abcdefgh12 }\nproviders: [ { name: m, type: mock, models: [ { name: x } ] } ]\n",
    )
    .unwrap();
    let out = Command::new(BIN).args(["check", "--config"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 providers, 1 models, 0 keys)"));
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str, key: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\nconnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

#[test]
fn serve_reloads_on_sighup_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tollgate.yaml");
    let (port, admin) = (free_port(), free_port());
    let write = |models: &str| {
        std::fs::write(
            &cfg,
            format!(
                "server: {{ listen: \"127.0.0.1:{port}\", admin_listen: \"127.0.0.1:{admin}\" }}\nstore: {{ url: \"memory://\" }}\nauth: {{ master_key: \"${{TG_TEST_MASTER}}\" }}\nproviders: [ {{ name: m, type: mock, models: [{models}] }} ]\n"
            ),
        )
        .unwrap()
    };
    write("{ name: one }");
    let child = Command::new(BIN)
        .args(["serve", "--no-watch", "--config"])
        .arg(&cfg)
        .env("TG_TEST_MASTER", "sighup-master-key")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let stderr = child.0.stderr.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        for _ in 0..100 {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}; log:\n{}", lines.lock().unwrap().join("\n"));
    };
    wait_for("ready", &|| {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && get(port, "/ready", "").0 == 200
    });
    let (status, body) = get(port, "/v1/models", "sighup-master-key");
    assert_eq!(status, 200);
    assert!(body.contains("m/one") && !body.contains("m/two"));

    write("{ name: one }, { name: two }");
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    wait_for("SIGHUP reload", &|| get(port, "/v1/models", "sighup-master-key").1.contains("m/two"));
    assert!(lines.lock().unwrap().iter().any(|l| l.contains("config reloaded") && l.contains("sighup")));

    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut exit = None;
    for _ in 0..100 {
        exit = child.0.try_wait().unwrap();
        if exit.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(exit.is_some_and(|s| s.success()), "exit on SIGTERM: {exit:?}");
}

#[test]
fn demo_walks_through_chat_stream_and_tools() {
    let out = Command::new(BIN).arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("reply: \"Hello, tollgate!\""), "{text}");
    assert!(text.contains("stream finished with [DONE]"), "{text}");
    assert!(text.contains("the model asks for: \"get_weather\""), "{text}");
    assert!(text.contains("final answer: \"Tool results:"), "{text}");
    assert!(text.contains("← 403"), "{text}");
    assert!(text.contains("resolved-model: mock/echo  attempts: 3"), "fallback after a retry: {text}");
    assert!(text.contains("50 requests → mock/echo: "), "{text}");
    assert!(text.contains("to card <CREDIT_CARD_1> please"), "{text}");
    assert!(text.contains("The deploy key is [REDACTED:AWS_ACCESS_KEY]"), "{text}");
    assert!(text.contains("guardrails: no-secrets-out=mutated"), "{text}");
    assert!(text.contains("x-tollgate-agent-steps: 2  x-tollgate-tools-blocked: ops/send_email"), "{text}");
    assert!(text.contains("mcp  ops/fetch_page  200"), "{text}");
    assert!(!text.contains("mcp  ops/send_email"), "the injected e-mail was never sent: {text}");
}

/// Sends one chat request over a fresh connection and returns the stream
/// to read the answer from (the request fully written).
fn post_chat(port: u16, body: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer drain-master-key\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s
}

fn read_all(mut s: std::net::TcpStream) -> String {
    use std::io::Read;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// SIGTERM with slow answers and streams in flight: each of them finishes
/// whole, new connections are refused at once, the process exits 0, and
/// every request is in the request log when the gateway comes back.
#[test]
fn sigterm_lets_requests_in_flight_finish_refuses_new_ones_and_logs_all() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tollgate.yaml");
    let (port, admin) = (free_port(), free_port());
    std::fs::write(
        &cfg,
        format!(
            "server: {{ listen: \"127.0.0.1:{port}\", admin_listen: \"127.0.0.1:{admin}\" }}\nstore: {{ url: \"sqlite://{}\" }}\nauth: {{ master_key: drain-master-key }}\nproviders:\n  - {{ name: slow, type: mock, mock: {{ latency: 1500ms }}, models: [{{ name: m }}] }}\n  - {{ name: paced, type: mock, mock: {{ chunk_delay: 150ms }}, models: [{{ name: m }}] }}\n",
            dir.path().join("t.db").display()
        ),
    )
    .unwrap();
    let start = || {
        // Owned at once, so a failing test never leaves a gateway behind.
        let child = Killed(
            Command::new(BIN)
                .args(["serve", "--no-watch", "--config"])
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && get(port, "/ready", "").0 == 200 {
                return child;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the gateway did not start");
    };
    let mut child = start();
    let slow: Vec<_> = (0..2)
        .map(|i| post_chat(port, &format!(r#"{{"model":"slow/m","messages":[{{"role":"user","content":"slow {i}"}}]}}"#)))
        .collect();
    // The streams are accepted after the slow requests; once each has sent
    // its first chunk, every connection before it is being served.
    let mut streams = Vec::new();
    for i in 0..2 {
        let mut s = post_chat(
            port,
            &format!(r#"{{"model":"paced/m","stream":true,"messages":[{{"role":"user","content":"one two three four five six seven {i}"}}]}}"#),
        );
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&head).contains("data: ") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the stream ended before its first chunk");
            head.extend_from_slice(&buf[..n]);
        }
        streams.push((String::from_utf8_lossy(&head).into_owned(), s));
    }

    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // New connections are refused while the old ones finish.
    let mut refused = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(refused, "the listener still accepts after SIGTERM");
    for s in slow {
        let answer = read_all(s);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("chat.completion"), "{answer}");
    }
    for (head, s) in streams {
        let answer = head + &read_all(s);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("data: [DONE]"), "the stream finished whole: {answer}");
    }
    let mut exit = None;
    for _ in 0..200 {
        exit = child.0.try_wait().unwrap();
        if exit.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(exit.is_some_and(|s| s.success()), "exit 0 after the drain: {exit:?}");

    let _again = start();
    let (status, logs) = get(admin, "/admin/logs?limit=100", "drain-master-key");
    assert_eq!(status, 200, "{logs}");
    let body = logs.split("\r\n\r\n").nth(1).unwrap_or_default();
    for model in ["slow/m", "paced/m"] {
        assert_eq!(body.matches(&format!("\"resolved_model\":\"{model}\"")).count(), 2, "{model} in {body}");
    }
}

/// A newcomer's run: embedded defaults, ports from the command line, plain
/// log lines when stderr is not a terminal, and a doubled `/v1` explained.
#[test]
fn serve_takes_listen_flags_logs_plain_text_and_explains_a_doubled_v1() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--admin-listen", &format!("127.0.0.1:{admin}")])
        .current_dir(dir.path())
        .env("TOLLGATE_MASTER_KEY", "flags-master-key")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let stderr = child.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>());
    let mut ready = false;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && get(port, "/ready", "").0 == 200 {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ready, "the data plane answers on --listen");
    let (status, body) = get(admin, "/admin/config", "flags-master-key");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("\"listen\":\"127.0.0.1:{port}\"")), "the config reports the bound address: {body}");
    let (status, body) = get(port, "/v1/v1/messages", "flags-master-key");
    assert_eq!(status, 404);
    assert!(body.contains("not_found_error") && body.contains("`/v1` appears twice"), "{body}");
    let (status, body) = get(port, "/v1/v1/models", "flags-master-key");
    assert_eq!(status, 404);
    assert!(body.contains("appears twice") && body.contains("/v1/models"), "{body}");

    assert!(Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap().success());
    let lines = reader.join().unwrap();
    assert!(lines.iter().any(|l| l.contains("tollgate ready")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains('\u{1b}')), "no colour codes in a piped log: {lines:?}");
}

/// The process opts out of transparent huge pages (the kernel reports it
/// in `/proc/<pid>/status`), unless `TOLLGATE_ALLOW_THP=1` says otherwise.
#[test]
fn serve_opts_out_of_transparent_huge_pages_unless_told_not_to() {
    let thp = |pid: &str| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("THP_enabled:")).expect("the kernel reports THP_enabled");
        line.split_whitespace().nth(1).unwrap().to_string()
    };
    // Allowed, the process keeps what it inherits (this test's own setting).
    let inherited = thp("self");
    for (allow, want) in [(None, "0".to_string()), (Some("1"), inherited)] {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin) = (free_port(), free_port());
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--admin-listen", &format!("127.0.0.1:{admin}")])
            .current_dir(dir.path())
            .env("TOLLGATE_MASTER_KEY", "thp-master-key")
            .env_remove("TOLLGATE_ALLOW_THP")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(v) = allow {
            cmd.env("TOLLGATE_ALLOW_THP", v);
        }
        let child = Killed(cmd.spawn().unwrap());
        let ready = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && get(port, "/ready", "").0 == 200
        });
        assert!(ready, "tollgate serve did not become ready");
        assert_eq!(thp(&child.0.id().to_string()), want, "TOLLGATE_ALLOW_THP={allow:?}");
    }
}
