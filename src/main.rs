//! The `imgflow` command line.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use futures::FutureExt;
use imgflow::access::{AuditLog, Gate, GateOptions, Htpasswd, Policy, TokenKeys};
use imgflow::config::Config;
use imgflow::registry::budget::ManifestBudget;
use imgflow::registry::headers::MinRate;
use imgflow::registry::{self, AppState};
use imgflow::server::{self, RedirectTarget, ServeOptions};
use imgflow::storage::{Storage, StorageOptions, UploadLimits};
use imgflow::tls::{self, CertPaths};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// imgflow: a self-hosted OCI image registry.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (HTTPS, OCI Distribution v1.1, Docker compatible).
    Serve(ServeArgs),
    /// Print the embedded default configuration (the documented config/registry.toml).
    DefaultConfig,
    /// Manage the users of the htpasswd file named by `[access] htpasswd`.
    #[command(subcommand)]
    User(UserCommand),
    /// Build, check and push the images of an imgflow.toml in dependency order
    /// (this build: --dry-run only, which prints the plan).
    Publish(PublishArgs),
}

#[derive(Args)]
struct PublishArgs {
    /// Images to publish (with what they depend on; their dependents are rebuilt when a
    /// parent's digest changes). None: every image of the file.
    #[arg(value_name = "IMAGE")]
    images: Vec<String>,
    /// The imgflow.toml describing the images.
    #[arg(long, short = 'f', value_name = "FILE", default_value = "imgflow.toml")]
    file: PathBuf,
    /// Registry to push to, HOST[:PORT] (overrides `registry` of the file).
    #[arg(long, value_name = "R")]
    registry: Option<String>,
    /// PEM CA certificate of the registry (besides the system store and
    /// /etc/docker/certs.d/HOST:PORT/).
    #[arg(long, value_name = "F")]
    cacert: Option<PathBuf>,
    /// Print the plan (order, tags, build args, dependencies, checks, budgets) without a
    /// Docker daemon or a registry.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
    /// Pin the images of this stack/compose file to the pushed digests.
    #[arg(long, value_name = "STACK.yml")]
    pin: Option<PathBuf>,
    /// Fail GPU images whose runtime checks cannot run here (no NVIDIA runtime).
    #[arg(long)]
    require_gpu: bool,
    /// Images built at once.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
}

/// Exit code of `publish` without `--dry-run`: this build cannot do what is asked (the
/// code clap uses for a usage error). Invalid files exit with 1.
const EXIT_USAGE: u8 = 2;

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user, or set a user's password (bcrypt). The password is read from standard
    /// input when it is not a terminal (one line), else asked for twice without echo.
    Add(UserArgs),
    /// Remove a user.
    Del(UserArgs),
}

#[derive(Args)]
struct UserArgs {
    /// User name (no `:` or whitespace; not `anonymous`).
    name: String,
    /// TOML configuration file naming the htpasswd file (relative to the file's directory).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file, merged over the embedded default.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides server.listen); port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Data directory (overrides storage.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Certificates directory (overrides tls.certs_dir).
    #[arg(long, value_name = "DIR")]
    certs_dir: Option<PathBuf>,
    /// Public URL for Location headers (overrides server.public_url).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Extra DNS name or IP for a generated certificate (repeatable; adds to tls.extra_names).
    #[arg(long = "tls-name", value_name = "NAME")]
    tls_names: Vec<String>,
}

/// glibc allocator settings that keep the heap small under many concurrent clients:
/// at most [`MALLOC_ARENAS`] arenas (by default glibc makes up to 8 per core, each
/// keeping its own freed memory), and a fixed mmap threshold so that upload buffers
/// (512 KiB and more) are mapped and unmapped, not left in an arena after use (glibc
/// otherwise raises the threshold after the first such free). Blob read chunks (256
/// KiB) stay below it: mapping fresh pages for each of them cost a third of the
/// download rate.
/// Runs before any thread starts.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD);
    }
}

/// glibc malloc arenas (see [`tune_allocator`]).
const MALLOC_ARENAS: i32 = 2;
/// Free memory at the top of an arena kept rather than returned to the system (see
/// [`tune_allocator`]): setting the mmap threshold also pins glibc's trim threshold at
/// 128 KiB, so every freed 256 KiB download buffer was handed back and the next one
/// faulted its pages in again.
const MALLOC_TRIM_THRESHOLD: i32 = 2 * 1024 * 1024;
/// Allocations of at least this many bytes get their own mapping (see [`tune_allocator`]).
const MALLOC_MMAP_THRESHOLD: i32 = 512 * 1024;

/// Threads of the blocking pool (file I/O).
const BLOCKING_THREADS: usize = 32;

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    match cli.command {
        Command::DefaultConfig => {
            print!("{}", imgflow::config::DEFAULT_CONFIG);
            ExitCode::SUCCESS
        }
        Command::User(cmd) => match user(cmd) {
            Ok(message) => {
                eprintln!("imgflow: {message}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("imgflow: error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Publish(args) => publish(&args),
        Command::Serve(args) => {
            use std::io::IsTerminal;
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info,rustls=error".into()),
                )
                .init();
            // Blocking file work (reads, writes, fsync) gets a bounded pool: each of its
            // threads costs a stack, and more threads than uploads and reads in flight
            // buy nothing on a small host.
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(BLOCKING_THREADS)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("imgflow: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("imgflow: error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `imgflow user add|del`: edit the configured htpasswd file; returns what was done.
fn user(cmd: UserCommand) -> anyhow::Result<String> {
    use imgflow::access::htpasswd;
    let (UserCommand::Add(args) | UserCommand::Del(args)) = &cmd;
    let cfg = Config::load(args.config.as_deref())?;
    let Some(path) = cfg.htpasswd_path() else {
        let file = args
            .config
            .as_ref()
            .map_or("the configuration".to_string(), |p| p.display().to_string());
        anyhow::bail!("{file} names no htpasswd file: set `htpasswd = \"FILE\"` under [access]");
    };
    match &cmd {
        UserCommand::Add(args) => {
            htpasswd::validate_user_name(&args.name)?;
            let password = read_password(&args.name)?;
            htpasswd::add_user(&path, &args.name, &password)?;
            Ok(format!(
                "set the password of {} in {}",
                args.name,
                path.display()
            ))
        }
        UserCommand::Del(args) => {
            htpasswd::del_user(&path, &args.name)?;
            Ok(format!("removed {} from {}", args.name, path.display()))
        }
    }
}

/// `imgflow publish`: the plan with `--dry-run`; building and pushing are not in this
/// build yet.
fn publish(args: &PublishArgs) -> ExitCode {
    use imgflow::publish::{Plan, PlanOptions, PublishConfig, RunSettings, TagContext};
    if !args.dry_run {
        eprintln!(
            "imgflow: error: building and pushing images is not in this build yet; \
             `imgflow publish --dry-run` prints the plan"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    // The errors name their file and line themselves: printed as they are.
    let plan = PublishConfig::load(&args.file)
        .map_err(|e| e.to_string())
        .and_then(|cfg| {
            let opts = PlanOptions {
                run: RunSettings {
                    jobs: args.jobs,
                    require_gpu: args.require_gpu,
                    pin: args.pin.clone(),
                    cacert: args.cacert.clone(),
                },
                registry: args.registry.clone(),
                images: args.images.clone(),
                tags: TagContext::new(&cfg.dir, time::OffsetDateTime::now_utc()),
            };
            Plan::build(&cfg, &opts).map_err(|e| e.to_string())
        });
    match plan {
        Ok(plan) if args.json => match serde_json::to_string_pretty(&plan) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("imgflow: error: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(plan) => {
            print!("{}", plan.to_text());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("imgflow: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The new password: one line of standard input when it is not a terminal, else typed
/// twice without echo.
fn read_password(name: &str) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password);
        anyhow::ensure!(!password.is_empty(), "no password on standard input");
        return Ok(password.to_string());
    }
    let first = rpassword::prompt_password(format!("Password for {name}: "))?;
    let again = rpassword::prompt_password("Again: ")?;
    anyhow::ensure!(first == again, "the passwords differ");
    Ok(first)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(args.config.as_deref())?;
    if let Some(l) = args.listen {
        cfg.server.listen = l;
    }
    if let Some(d) = args.data_dir {
        cfg.storage.data_dir = d;
    }
    if let Some(d) = args.certs_dir {
        cfg.tls.certs_dir = d;
    }
    if let Some(u) = args.public_url {
        cfg.server.public_url = u;
    }
    cfg.tls.extra_names.extend(args.tls_names);
    // A specific listen address is a name clients will use: cover it too.
    let listen_ip = cfg.server.listen.ip();
    if !listen_ip.is_unspecified() {
        cfg.tls.extra_names.push(listen_ip.to_string());
    }

    let paths = CertPaths::in_dir(&cfg.tls.certs_dir);
    let names = tls::default_names(&cfg.tls.extra_names);
    let generated = tls::ensure(&paths, &names).context("preparing TLS certificates")?;
    let client_ca = cfg.client_ca_path();
    let live_tls =
        tls::LiveTls::load(&paths, client_ca.as_deref()).context("loading TLS certificates")?;
    if let Some(ca) = &client_ca {
        tracing::info!(client_ca = %ca.display(), "client certificates signed by this CA identify their Common Name");
    }
    let policy = Arc::new(Policy::new(cfg.access.as_ref())?);
    tracing::info!(policy = policy.description(), "access policy");

    let storage = Storage::open(StorageOptions {
        data_dir: cfg.storage.data_dir.clone(),
        max_manifest_bytes: cfg.storage.max_manifest_bytes,
        upload_expiry: Duration::from_secs(cfg.storage.upload_expiry_hours * 3600),
        upload_limits: UploadLimits {
            max_sessions: cfg.storage.max_upload_sessions,
            max_sessions_per_client: cfg.storage.max_upload_sessions_per_client,
        },
        cache_bytes: cfg.storage.metadata_cache_bytes,
        read_ahead_bytes: cfg.storage.read_ahead_bytes,
    })
    .await
    .with_context(|| format!("opening storage in {}", cfg.storage.data_dir.display()))?;
    spawn_sweep(storage.clone());

    let gate = Arc::new(build_gate(&cfg, Policy::clone(&policy))?);
    spawn_user_reload(gate.clone());
    let public_url = Some(cfg.server.public_url.trim().to_string()).filter(|u| !u.is_empty());
    let app = registry::router(AppState {
        gate,
        storage,
        public_url: public_url.clone(),
        body_idle_timeout: Duration::from_secs(cfg.server.body_idle_timeout_secs),
        min_upload_rate: MinRate {
            bytes_per_sec: cfg.server.min_upload_rate_bytes_per_sec,
            grace: Duration::from_secs(cfg.server.min_upload_rate_grace_secs),
            window: Duration::from_secs(cfg.server.min_upload_rate_window_secs.max(1)),
        },
        manifest_budget: ManifestBudget::new(
            cfg.server.manifest_budget_bytes,
            Duration::from_secs(cfg.server.manifest_budget_wait_secs),
        ),
    });
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("binding {}", cfg.server.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = shutdown_signal().shared();
    if let Some(redirect_addr) = cfg.server.redirect_listen()? {
        let redirect = tokio::net::TcpListener::bind(redirect_addr)
            .await
            .with_context(|| format!("binding the HTTP redirect listener {redirect_addr}"))?;
        tracing::info!(addr = %redirect.local_addr()?, "redirecting plain HTTP to HTTPS");
        tokio::spawn(server::serve_redirect(
            redirect,
            policy.clone(),
            RedirectTarget::new(public_url.as_deref(), addr.port()),
            Duration::from_secs(cfg.server.header_read_timeout_secs),
            shutdown.clone(),
        ));
    }
    live_tls.watch();
    if generated {
        print_trust_help(&paths, &names, addr.port());
    }
    println!("imgflow: listening on https://{addr}");
    tracing::info!(%addr, data = %cfg.storage.data_dir.display(), "registry ready");
    let opts = ServeOptions {
        handshake_timeout: Duration::from_secs(cfg.server.tls_handshake_timeout_secs),
        header_read_timeout: Duration::from_secs(cfg.server.header_read_timeout_secs),
        shutdown_grace: Duration::from_secs(cfg.server.shutdown_grace_secs),
        max_connections: cfg.server.max_connections,
        max_header_bytes: cfg.server.max_header_bytes,
        idle_timeout: Duration::from_secs(cfg.server.idle_timeout_secs),
        policy,
        hsts_max_age_secs: cfg.server.hsts_max_age_secs,
    };
    server::serve(listener, live_tls, app, opts, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Access control from the configuration: `policy` (the compiled rules), users, token
/// key, audit log.
fn build_gate(cfg: &Config, policy: Policy) -> anyhow::Result<Gate> {
    let htpasswd = match cfg.htpasswd_path() {
        Some(path) => Some(
            Htpasswd::load(&path)
                .with_context(|| format!("loading users from {}", path.display()))?,
        ),
        None => None,
    };
    let token_on = cfg.access.as_ref().is_some_and(|a| a.token_enabled());
    let tokens = if token_on {
        let ttl = cfg.access.as_ref().map_or(300, |a| a.token.ttl_secs);
        let path = cfg.token_key_path();
        Some(
            TokenKeys::load_or_generate(&path, Duration::from_secs(ttl))
                .with_context(|| format!("token signing key {}", path.display()))?,
        )
    } else {
        None
    };
    let audit = AuditLog::open(&cfg.audit_sink()).context("opening the audit log")?;
    let gate = Gate::new(GateOptions {
        policy,
        htpasswd,
        tokens,
        max_failed_logins: cfg.access.as_ref().map_or(0, |a| a.max_failed_logins),
        trusted_proxies: cfg
            .access
            .as_ref()
            .map(|a| a.trusted_proxy_set())
            .unwrap_or_default(),
        audit,
        service: TOKEN_SERVICE.to_string(),
    });
    tracing::info!(mode = ?gate.mode(), "access control ready");
    Ok(gate)
}

/// The `service` of token challenges and the audience of tokens.
const TOKEN_SERVICE: &str = "imgflow";

/// Re-read the htpasswd file when it changes (checked every 5 s).
fn spawn_user_reload(gate: Arc<Gate>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let gate = gate.clone();
            let _ = tokio::task::spawn_blocking(move || gate.reload_users()).await;
        }
    });
}

fn print_trust_help(paths: &CertPaths, names: &[String], port: u16) {
    let ca = paths.ca.display();
    eprintln!(
        "imgflow: generated a development CA ({ca}) and a server certificate for {}.\n\
         Trust the CA in your clients:\n  \
         docker:  sudo mkdir -p /etc/docker/certs.d/HOST:{port} && sudo cp {ca} /etc/docker/certs.d/HOST:{port}/ca.crt\n  \
         skopeo:  mkdir -p ~/imgflow-certs && cp {ca} ~/imgflow-certs/ && skopeo ... --dest-cert-dir ~/imgflow-certs (or --src-cert-dir, --cert-dir)\n  \
         curl:    curl --cacert {ca} https://HOST:{port}/v2/",
        names.join(", ")
    );
}

/// Expire idle upload sessions and remove orphan files every 10 minutes (the first
/// sweep ran when storage opened).
fn spawn_sweep(storage: Storage) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        tick.tick().await;
        loop {
            tick.tick().await;
            match storage.sweep().await {
                Ok(r) if r.removed() == 0 => {}
                Ok(r) => tracing::info!(
                    uploads = r.uploads,
                    orphan_blobs = r.orphan_blobs,
                    "removed idle upload sessions and orphan files"
                ),
                Err(e) => tracing::warn!(error = %e, "storage sweep failed"),
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
