//! The README's tours, run as written against the real binary, so they
//! cannot go stale: the curl tour (201, 201, 304, 412, 422, then 200, 200,
//! 429) and the operators' (docs page, probes, metrics, a request id found in
//! the access log, a backup).

mod common;

use tokio::process::Command;

fn tour() -> String {
    block("tour")
}

/// The sh block between `<!-- NAME:start -->` and `<!-- NAME:end -->`.
fn block(name: &str) -> String {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find(&format!("<!-- {name}:start -->"))
        .expect("README has the tour");
    let end = readme
        .find(&format!("<!-- {name}:end -->"))
        .expect("README's tour ends");
    let block = &readme[start..end];
    let code = block.split("```sh\n").nth(1).expect("a sh block");
    code.split("```").next().unwrap().to_string()
}

/// Whether curl is there; without it (and without `CI`) the tours skip, saying so.
fn curl_or_skip() -> bool {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok()
    {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("curl is needed for the README tours");
    }
    eprintln!("skipping: curl is not installed");
    false
}

#[tokio::test]
async fn the_readme_curl_tour_shows_201_304_412_422_and_429() {
    if !curl_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = common::fresh_data(dir.path()).await;
    let (_server, base) =
        common::spawn_binary(&["--admin-token", "readme-admin", "--data", &data]).await;
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &tour()])
        .env("VERDICT", &base)
        .env("TOKEN", "readme-admin")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let statuses: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("HTTP/"))
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["201", "201", "304", "412", "422", "200", "200", "429"],
        "{stdout}"
    );
    assert!(stdout.contains("\"pointer\":\"/title\""), "{stdout}");
    assert!(
        stdout.to_ascii_lowercase().contains("retry-after: "),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_readme_operator_tour_shows_docs_probes_a_logged_request_and_a_backup() {
    if !curl_or_skip() {
        return;
    }
    if common::on_postgres() {
        // `verdict backup` copies SQLite; PostgreSQL's is pg_dump.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = common::fresh_data(dir.path()).await;
    let log_path = dir.path().join("verdict.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (_server, base) = common::spawn_binary_logging(
        None,
        &[
            "--admin-token",
            "readme-admin",
            "--data",
            &data,
            "--log-json",
        ],
        log.into(),
    )
    .await;
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_verdict"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let backup = dir.path().join("backup.db");
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block("ops-tour")])
        .env("VERDICT", &base)
        .env("AUTH", "Authorization: Bearer readme-admin")
        .env("VERDICT_DATA", &data)
        .env("BACKUP", &backup)
        .env("PATH", path)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "<title>",
        "\"openapi\":\"3.1.0\"",
        "{\"status\":\"ok\"}",
        "\"storage\":\"ok\"",
        "verdict_storage_up 1",
        "HTTP/1.1 404",
        "verdict: backed up to",
    ] {
        assert!(stdout.contains(expected), "{expected} in {stdout}");
    }
    // The request id the 404 carried is on its access line, as JSON.
    let id = stdout
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-request-id: ")
                .map(|v| v.trim().to_string())
        })
        .expect("a request id");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains(&id) && l.contains("verdict::access"))
        .unwrap_or_else(|| panic!("no access line for {id} in {log}"));
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["fields"]["status"], 404, "{line}");
    assert!(entry["fields"]["bytes"].as_u64().unwrap() > 0, "{line}");
    assert_eq!(
        entry["fields"]["route"], "/v1/collections/{c}/records/{id}",
        "{line}"
    );
    // The backup is a database the service can open.
    assert!(std::fs::metadata(&backup).unwrap().len() > 0);
    let opened = verdict_service::open_storage(backup.to_str().unwrap()).await;
    assert!(opened.is_ok());
}
