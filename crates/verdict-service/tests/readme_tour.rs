//! The README's curl tour, run as written against the real binary, so it
//! cannot go stale: 201, 201, 304, 412, 422, then 200, 200, 429.

mod common;

use tokio::process::Command;

fn tour() -> String {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("<!-- tour:start -->")
        .expect("README has the tour");
    let end = readme
        .find("<!-- tour:end -->")
        .expect("README's tour ends");
    let block = &readme[start..end];
    let code = block.split("```sh\n").nth(1).expect("a sh block");
    code.split("```").next().unwrap().to_string()
}

#[tokio::test]
async fn the_readme_curl_tour_shows_201_304_412_422_and_429() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var_os("CI").is_some() {
            panic!("curl is needed for the README tour");
        }
        eprintln!("skipping: curl is not installed");
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
