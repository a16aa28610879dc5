//! `cargo run -p verdict --example todos [ADDR]` serves the todos app (on
//! 127.0.0.1:3000 by default); `--openapi` prints its OpenAPI document.
//!
//! ```text
//! curl -H 'Authorization: Bearer writer' -H 'Content-Type: application/json' \
//!      -d '{"title":"write docs"}' localhost:3000/todos          # 201, ETag: "1"
//! curl -X DELETE localhost:3000/health                          # 405, Allow: GET, HEAD, OPTIONS
//! curl localhost:3000/todos                                     # 401, WWW-Authenticate: Bearer realm="todos"
//! ```

mod app;

use verdict::server::Server;
use verdict::Preset;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let arg = std::env::args().nth(1);
    let preset = Preset::standard();
    if arg.as_deref() == Some("--openapi") {
        let doc = serde_json::to_string_pretty(&app::openapi(&preset)).expect("serializes");
        println!("{doc}");
        return Ok(());
    }
    let addr = arg.unwrap_or_else(|| "127.0.0.1:3000".to_string());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("todos on http://{addr} (tokens: reader, writer)");
    let app = app::app(
        preset.clone(),
        &app::Settings::default(),
        app::Todos::default(),
    );
    Server::new(listener, app)
        .preset(preset)
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
