//! The `tollgate` command: serve, check, demo, schema.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tollgate::config::load::{self, embedded_defaults};
use tollgate::config::reload::{Live, Source};
use tollgate::providers::http::install_crypto;
use tollgate::server::Gateway;
use tollgate::state::Shared;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tollgate", version, about = "One governed gateway for every AI call: models, tools and agents.")]
struct Cli {
    /// Log level: error, warn, info, debug or trace (also TOLLGATE_LOG).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Without --config: embedded defaults (the mock provider,
    /// plus OpenAI when OPENAI_API_KEY is set).
    Serve {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Do not watch the config file; reload only on SIGHUP or the admin API.
        #[arg(long)]
        no_watch: bool,
        /// Data plane address (IP:port), over `server.listen`.
        #[arg(long, value_name = "IP:PORT")]
        listen: Option<std::net::SocketAddr>,
        /// Admin API address (IP:port), over `server.admin_listen`.
        #[arg(long, value_name = "IP:PORT")]
        admin_listen: Option<std::net::SocketAddr>,
    },
    /// Validate a config file; prints every error with file:line:column.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start a gateway on the mock provider and walk through what it does.
    Demo {
        /// Keep serving after the tour.
        #[arg(long)]
        keep_running: bool,
    },
    /// Print the JSON Schema of the config file.
    Schema,
    /// Exit 0 if the gateway answers 200 at URL: the container health check.
    Probe {
        #[arg(default_value = tollgate::cli_probe::DEFAULT_URL)]
        url: String,
    },
    /// Manage virtual keys through a running gateway's admin API
    /// (TOLLGATE_MASTER_KEY authenticates; TOLLGATE_ADMIN_URL or --admin-url picks the gateway).
    Keys {
        #[arg(long, global = true)]
        admin_url: Option<String>,
        #[command(subcommand)]
        command: tollgate::cli_keys::KeysCommand,
    },
    /// Search the request log of a running gateway (admin API).
    Logs {
        #[arg(long)]
        admin_url: Option<String>,
        #[command(flatten)]
        args: tollgate::cli_logs::LogsArgs,
    },
    /// Usage and cost grouped by any metadata key, model, provider, subject or day.
    Usage {
        #[arg(long)]
        admin_url: Option<String>,
        #[command(flatten)]
        args: tollgate::cli_logs::UsageArgs,
    },
    /// MCP servers of a running gateway: health, tools, approvals (admin API).
    Mcp {
        #[arg(long, global = true)]
        admin_url: Option<String>,
        #[command(subcommand)]
        command: tollgate::cli_mcp::McpCommand,
    },
    /// The built-in guardrail detectors, offline.
    Guardrails {
        #[command(subcommand)]
        command: GuardrailsCommand,
    },
    /// The audit log in the store named by the config.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum GuardrailsCommand {
    /// Run a detector over JSON lines `{"id", "text"}` on stdin; prints what
    /// it finds, one JSON line per input line.
    Scan(tollgate::cli_guardrails::ScanArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain: exits 1 and names the first edited or missing entry.
    Verify {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    small_pages();
    let cli = Cli::parse();
    let level = cli.log_level.or_else(|| std::env::var("TOLLGATE_LOG").ok()).unwrap_or_else(|| "info".into());
    let level: tracing::Level = level.parse().unwrap_or(tracing::Level::INFO);
    let quiet_demo = matches!(cli.command, Command::Demo { .. });
    tracing_subscriber::fmt()
        .with_max_level(if quiet_demo { tracing::Level::WARN } else { level })
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: a file, a pipe or a
        // log collector gets plain text (and NO_COLOR is honoured).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none())
        .with_target(false)
        .init();
    install_crypto();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Schema => {
            print!("{}", tollgate::config::json_schema());
            ExitCode::SUCCESS
        }
        Command::Serve { config, no_watch, listen, admin_listen } => {
            let flags = tollgate::state::ListenFlags { data: listen, admin: admin_listen };
            runtime().block_on(serve(config, !no_watch, flags))
        }
        Command::Demo { keep_running } => runtime().block_on(tollgate::demo::run(keep_running)),
        Command::Probe { url } => runtime().block_on(tollgate::cli_probe::run(&url)),
        Command::Keys { admin_url, command } => runtime().block_on(tollgate::cli_keys::run(command, admin_url)),
        Command::Guardrails { command: GuardrailsCommand::Scan(args) } => match tollgate::cli_guardrails::scan(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Audit { command: AuditCommand::Verify { config } } => runtime().block_on(audit_verify(config)),
        Command::Mcp { admin_url, command } => runtime().block_on(tollgate::cli_mcp::run(command, admin_url)),
        Command::Logs { admin_url, args } => runtime().block_on(tollgate::cli_logs::logs(args, admin_url)),
        Command::Usage { admin_url, args } => runtime().block_on(tollgate::cli_logs::usage(args, admin_url)),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tollgate: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match load::load_path(path, 1, &Shared::default()) {
        Ok(snap) => {
            for w in &snap.warnings {
                eprintln!("{}: warning: {w}", path.display());
            }
            println!(
                "{}: ok ({} providers, {} models, {} keys)",
                path.display(),
                snap.models.providers.len(),
                snap.models.listed.len(),
                snap.auth.keys.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{}: {} error(s)", path.display(), e.diags.len());
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Option<PathBuf>, watch: bool, listen: tollgate::state::ListenFlags) -> ExitCode {
    // On the embedded defaults, the master key, for the demo traffic.
    let mut defaults_key = None;
    let source = match config {
        Some(p) => Source::File(p),
        None => {
            let mut props = std::collections::HashMap::new();
            if std::env::var("TOLLGATE_MASTER_KEY").map_or(true, |k| k.is_empty()) {
                let key = tollgate::demo::random_key();
                eprintln!("tollgate: no config and no TOLLGATE_MASTER_KEY; this run's master key is:\n\n    {key}\n");
                props.insert("TOLLGATE_MASTER_KEY".to_string(), key.clone());
                defaults_key = Some(key);
            } else {
                defaults_key = std::env::var("TOLLGATE_MASTER_KEY").ok();
            }
            let keys: Vec<&str> = tollgate::config::load::DEFAULT_PROVIDER_KEYS
                .into_iter()
                .filter(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()))
                .collect();
            Source::Text { text: embedded_defaults(&keys), origin: "embedded defaults".into(), props }
        }
    };
    let live = match Live::new(source, Shared { listen, ..Shared::default() }) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    live.spawn_watchers(watch);
    match Gateway::start(live).await {
        Ok(gw) => {
            if let Some(key) = defaults_key {
                tollgate::demo::traffic(&gw, key);
            }
            gw.run_until_signal().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn audit_verify(config: PathBuf) -> ExitCode {
    let snap = match load::load_path(&config, 1, &Shared::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let store = match tollgate::store::Store::open(&snap.server.store).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tollgate audit: cannot open the store: {e}");
            return ExitCode::FAILURE;
        }
    };
    let entries = match store.load_audit().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tollgate audit: cannot read the audit log: {e}");
            return ExitCode::FAILURE;
        }
    };
    match tollgate::audit::verify(&entries) {
        Ok(n) => {
            let last = entries.last().map_or("-".to_string(), |e| e.hash[..16].to_string());
            println!("audit log ok: {n} entries, chain intact (last hash {last}…)");
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("audit log BROKEN: {problem}");
            ExitCode::FAILURE
        }
    }
}

/// Where the kernel backs anonymous memory with transparent huge pages
/// ("always", common on distributions), every 2 MiB region the allocator
/// touches becomes resident whole: measured idle RSS on the embedded
/// defaults was 33 MB with it and 22 MB without. A gateway's heap is many
/// small, short-lived allocations, so the process opts out before it
/// allocates much. `TOLLGATE_ALLOW_THP=1` keeps the system's setting.
fn small_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("TOLLGATE_ALLOW_THP").is_none_or(|v| v != "1") {
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
}
