//! The `verdict` command.

use clap::Parser;
use tracing_subscriber::EnvFilter;
use verdict_service::config::{Cli, Command};
use verdict_service::storage::sqlite::backup::{backup, restore, sqlite_path};

// A request allocates and frees many small objects across worker threads;
// glibc's malloc spent a fifth of a page read in its own bookkeeping
// (bench/, perf), mimalloc a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Backup(args) => report(
            sqlite_path(&args.data)
                .and_then(|db| backup(&db, &args.file))
                .map(|()| format!("verdict: backed up to {}", args.file.display())),
        ),
        Command::Token(args) => report(verdict_service::cli::token(args).await),
        Command::Check(args) => std::process::ExitCode::from(verdict_check::run(args).await as u8),
        Command::Proxy(args) => {
            let _log = init_logging(args.log_json);
            std::process::ExitCode::from(verdict_proxy::run(args).await as u8)
        }
        Command::Openapi(args) => {
            use verdict_service::surface::openapi::{document, to_json};
            let doc = document(&args.preset, &[]);
            let text = to_json(&doc, args.preset.format().content_type());
            report(String::from_utf8(text).map_err(|e| e.to_string()))
        }
        Command::Restore(args) => report(
            sqlite_path(&args.data)
                .and_then(|db| restore(&args.file, &db, args.force))
                .map(|()| format!("verdict: restored {}", args.file.display())),
        ),
    }
}

/// Prints what a one-shot command did, or why it could not.
fn report(done: Result<String, String>) -> std::process::ExitCode {
    match done {
        Ok(text) => {
            println!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("verdict: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, as text or JSON, at the level VERDICT_LOG (it names this
/// program) or else RUST_LOG sets; panics become one log event.
///
/// Lines are written by a thread of their own (tracing-appender's
/// non-blocking writer), so a request does not wait for the `write(2)` of
/// its access line (measured at 6% of the gateway's time under load). It is
/// never lossy: when its buffer is full, logging waits rather than drops a
/// line. The guard flushes what is left when it drops, at the end of `main`;
/// a `kill -9` can lose the last few milliseconds of lines, never a write.
///
/// That thread writes through a buffer, which it flushes each time it has
/// written every line waiting: one `write(2)` for a burst of lines under
/// load instead of one a line, and an idle server's lines still out at once.
#[must_use = "dropping the guard stops the log's writer thread"]
fn init_logging(json: bool) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("verdict-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let filter = EnvFilter::try_from_env("VERDICT_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    if json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    // A panic goes to the log as one event (the request still gets its 500
    // from the library): the default hook would write plain-text lines into
    // a JSON log stream.
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = %payload, location = %location, "a thread panicked");
    }));
    guard
}

async fn serve(args: verdict_service::config::ServeArgs) -> std::process::ExitCode {
    let _log = init_logging(args.log_json);
    let listen = args.listen;
    let storage_label = args.storage_label();
    // Bound first: a start that fails on "address in use" must not have
    // generated (and burnt) the only admin token, nor opened storage for nothing.
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("verdict: cannot listen on {listen}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let storage = match verdict_service::open_storage_cached(&args.data, args.record_cache).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("verdict: cannot open storage {storage_label}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let service = match verdict_service::build(args, storage).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("verdict: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if let Some(secret) = &service.generated_admin_token {
        // Printed once, on the first start; only its hash is stored. A lost
        // one is replaced by restarting with --admin-token.
        println!("admin token (shown once, keep it): {secret}");
    }
    tracing::info!(address = %local, preset = %service.state.preset, storage = %storage_label, "verdict serving");
    println!(
        "verdict {} with {storage_label}, preset {}",
        env!("CARGO_PKG_VERSION"),
        service.state.preset
    );
    println!("docs on http://{local}/docs");
    println!("listening on http://{local}");
    match verdict_service::serve_on(listener, service).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verdict: server error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
