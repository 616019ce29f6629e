//! The crate's place in the layers, read from its own manifest: the compiler stays pure (no
//! async, no network, no database) and free of XML — the shard planner it uses lives in
//! `assay-shard`, not in `assay-reports`.

/// The names under `[dependencies]` of a manifest.
fn dependencies(manifest: &str) -> Vec<String> {
    let mut inside = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside && let Some((name, _)) = line.split_once(['=', '.']) {
            names.push(name.trim().to_string());
        }
    }
    names
}

#[test]
fn the_compiler_depends_on_no_xml_io_or_async_crate() {
    let deps = dependencies(include_str!("../Cargo.toml"));
    assert!(deps.contains(&"assay-shard".to_string()), "{deps:?}");
    for banned in [
        "assay-reports",
        "quick-xml",
        "tokio",
        "reqwest",
        "sqlx",
        "assay-engine",
        "assay-store",
    ] {
        assert!(
            !deps.iter().any(|d| d == banned),
            "assay-spec depends on {banned}: {deps:?}"
        );
    }
}
