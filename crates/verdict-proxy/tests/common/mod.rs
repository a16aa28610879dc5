//! What the gateway's test files share: the gateway on a socket, parsed from
//! flags as `verdict proxy` parses them, and a closed loopback port.

#![allow(dead_code)] // each test file uses its own share of this

use clap::Parser;
use tokio::net::TcpListener;

/// `verdict proxy`'s flags, as the binary parses them.
#[derive(Parser)]
pub struct Cli {
    #[command(flatten)]
    pub proxy: verdict_proxy::ProxyArgs,
}

/// The gateway with `flags`, served on a socket; its base URL.
pub async fn gateway(flags: &[&str]) -> String {
    let mut argv = vec!["gateway", "--listen", "127.0.0.1:0"];
    argv.extend(flags);
    let args = Cli::try_parse_from(argv).expect("valid flags").proxy;
    let app = verdict_proxy::build(&args).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        verdict::server::Server::new(listener, app)
            .run()
            .await
            .unwrap();
    });
    base
}

/// A closed loopback port: nothing listens there.
pub async fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    base
}
