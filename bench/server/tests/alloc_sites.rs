//! `alloc-sites` counts and lists where one request allocates: run as the
//! README shows, on each side.

use std::process::Command;

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_alloc-sites"))
        .args(args)
        .output()
        .expect("alloc-sites runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("text")
}

/// The count in `<side>: N allocations for one request`.
fn count(line: &str) -> usize {
    line.split(": ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

#[test]
fn alloc_sites_counts_each_side_and_the_stack_allocates_more_than_the_bare_handler() {
    let bare = run(&["bare", "--count"]);
    let assembled = run(&["assembled", "--count"]);
    let stacked = run(&["stacked", "--count"]);
    assert!(bare.starts_with("bare handler: "), "{bare}");
    assert!(
        assembled.starts_with("hand-assembled stack: "),
        "{assembled}"
    );
    assert!(stacked.starts_with("full stack: "), "{stacked}");
    let (bare, stacked) = (count(&bare), count(&stacked));
    assert!(bare > 0 && stacked > bare, "bare {bare}, stacked {stacked}");
}

#[test]
fn alloc_sites_lists_one_line_per_allocation_with_its_size() {
    let out = run(&["stacked"]);
    let mut lines = out.lines();
    let n = count(lines.next().expect("the count"));
    let sites: Vec<&str> = lines.collect();
    assert_eq!(sites.len(), n, "{out}");
    for site in sites {
        let size = site.trim_start().split(" B").next().unwrap_or("");
        assert!(size.parse::<usize>().is_ok(), "{site:?}");
    }
}

#[test]
fn alloc_sites_measure_serves_the_requests_it_is_asked_for_and_prints_nothing() {
    assert_eq!(run(&["stacked", "--measure", "50"]), "");
}
