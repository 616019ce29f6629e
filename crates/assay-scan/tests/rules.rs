//! The default rules and gitleaks-format configuration over real files: each kind of token is
//! found where it is, allowlists (paths, regexes and their targets, stopwords, AND), entropy,
//! `[extend]`, inline markers and `.gitleaksignore` keep findings out, and the secret is never
//! in a finding. Tokens are assembled at run time so that this file holds none.

use std::path::{Path, PathBuf};

use assay_scan::{Options, Rules, config, scan};

/// A token-shaped string: `prefix` then `n` characters of a fixed, high-entropy alphabet walk.
pub fn token(prefix: &str, n: usize) -> String {
    const ALPHABET: &[u8] = b"aB3dE5gH7jK9mN2pQ4sT6vW8xY0zA1cF";
    let mut s = prefix.to_string();
    let mut i = 7usize;
    for _ in 0..n {
        s.push(ALPHABET[i % ALPHABET.len()] as char);
        i = (i * 5 + 3) % 97;
    }
    s
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn run(rules: &Rules, dir: &Path) -> assay_scan::Report {
    scan(rules, &[dir.to_path_buf()], false, &Options::default()).unwrap()
}

fn found(report: &assay_scan::Report) -> Vec<(String, String, usize)> {
    let mut v: Vec<_> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.rule.clone(),
                Path::new(&f.file)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                f.line,
            )
        })
        .collect();
    v.sort();
    v
}

fn pem() -> String {
    let body = token("MIIEv", 64);
    format!(
        "-----BEGIN RSA {k}-----\n{body}\n{body}\n-----END RSA {k}-----\n",
        k = "PRIVATE KEY"
    )
}

#[test]
fn default_rules_find_each_kind_of_token_on_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let aws_id = token("AKIA", 16)
        .to_uppercase()
        .replace(['0', '1', '8', '9'], "Q");
    let secrets = [
        ("aws.env", format!("AWS_ACCESS_KEY_ID={aws_id}\n")),
        (
            "aws2.env",
            format!(
                "# prod\naws_secret_access_key = {}\n",
                token("", 40).replace(['_', '-'], "x")
            ),
        ),
        (
            "gh.yaml",
            format!("x: 1\ny: 2\ntoken: {}\n", token("ghp_", 36)),
        ),
        ("gl.sh", format!("export GL={}\n", token("glpat-", 20))),
        (
            "slack.py",
            format!("SLACK = \"{}\"\n", token("xoxb-1234-", 24)),
        ),
        ("key.pem", pem()),
        (
            "stripe.js",
            format!("const k = '{}';\n", token("sk_live_", 24)),
        ),
        (
            "db.txt",
            format!("url: postgres://app:{}@db.internal:5432/x\n", token("", 14)),
        ),
        (
            "app.ini",
            format!("[x]\nclient_secret = {}\n", token("", 32)),
        ),
        (
            "jwt.txt",
            format!(
                "{}.{}.{}\n",
                token("eyJ", 20),
                token("eyJ", 20),
                token("", 20)
            ),
        ),
    ];
    for (name, text) in &secrets {
        write(d, name, text);
    }
    write(
        d,
        "clean.txt",
        "password = hunter2\ntoken: ${{ secrets.TOKEN }}\napi_key = os.environ['API_KEY']\n",
    );
    let report = run(&Rules::default_rules(), d);
    assert_eq!(
        found(&report),
        vec![
            ("aws-access-key-id".into(), "aws.env".into(), 1),
            ("aws-secret-access-key".into(), "aws2.env".into(), 2),
            ("github-token".into(), "gh.yaml".into(), 3),
            ("gitlab-token".into(), "gl.sh".into(), 1),
            ("jwt".into(), "jwt.txt".into(), 1),
            ("private-key".into(), "key.pem".into(), 1),
            ("slack-token".into(), "slack.py".into(), 1),
            ("stripe-key".into(), "stripe.js".into(), 1),
            ("url-password".into(), "db.txt".into(), 1),
            ("generic-secret-assignment".into(), "app.ini".into(), 2),
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<(String, String, usize)>>()
        .into_iter()
        .collect::<Vec<_>>(),
        "{:#?}",
        report.findings
    );
    assert_eq!(report.files, secrets.len() + 1);
    // The secret is in no finding, in no form the report can be written as.
    let json = serde_json::to_string(&report).unwrap();
    for (_, text) in &secrets {
        for part in text.split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-') {
            if part.len() >= 14 && part.chars().any(|c| c.is_ascii_digit()) {
                assert!(!json.contains(part), "{part} leaked into {json}");
            }
        }
    }
    let gh = report
        .findings
        .iter()
        .find(|f| f.rule == "github-token")
        .unwrap();
    assert_eq!(gh.line_text, "token: *****");
    assert_eq!(gh.column, 8);
    assert_eq!(gh.secret, "*****");
    assert!(gh.entropy > 3.0, "{}", gh.entropy);
    let key = report
        .findings
        .iter()
        .find(|f| f.rule == "private-key")
        .unwrap();
    assert_eq!(key.line_text, "*****");
}

#[test]
fn allowlists_entropy_extend_and_markers_keep_findings_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write(
        d,
        "rules/scan.toml",
        r#"
title = "team rules"
[extend]
useDefault = true
disabledRules = ["jwt"]

[[rules]]
id = "internal-token"
description = "Internal service token"
regex = '''\b(itk_[a-zA-Z0-9]{24})\b'''
entropy = 3.0
keywords = ["itk_"]
path = '''\.(?:env|txt)$'''
[[rules.allowlists]]
description = "test fixtures, when they also say FIXTURE on the line"
condition = "AND"
paths = ['''fixtures/''']
regexTarget = "line"
regexes = ['''FIXTURE''']

[[rules]]
id = "github-token"
[[rules.allowlists]]
stopwords = ["aaaaaaaaaa"]

[[allowlists]]
description = "vendored"
paths = ['''^vendor/|/vendor/''']
"#,
    );
    let itk = token("itk_", 24);
    write(d, "src/a.env", &format!("X={itk}\n"));
    write(d, "src/low.env", &format!("X=itk_{}\n", "ab".repeat(12)));
    write(d, "src/a.rs", &format!("let x = \"{itk}\";\n"));
    write(d, "fixtures/b.txt", &format!("X={itk} FIXTURE\nY={itk}\n"));
    write(d, "vendor/c.env", &format!("X={itk}\n"));
    write(
        d,
        "src/gh.txt",
        &format!("{}\nghp_{}\n", token("ghp_", 36), "a".repeat(36)),
    );
    write(
        d,
        "src/jwt.txt",
        &format!(
            "{}.{}.{}\n",
            token("eyJ", 20),
            token("eyJ", 20),
            token("", 20)
        ),
    );
    write(
        d,
        "src/inline.env",
        &format!("X={itk} # gitleaks:allow\nY={itk} # assay:allow\n"),
    );
    write(d, "src/ignored.env", &format!("X={itk}\n"));
    let scanned = d.join("src");
    let report_before = {
        let file = config::load(&cfg).unwrap();
        let rules = Rules::compile(&file, &cfg).unwrap();
        assert_eq!(rules.title.as_deref(), Some("team rules"));
        assert!(rules.rules.iter().all(|r| r.id != "jwt"));
        let all = scan(&rules, &[d.to_path_buf()], false, &Options::default()).unwrap();
        assert_eq!(
            found(&all),
            vec![
                ("github-token".into(), "gh.txt".into(), 1),
                ("internal-token".into(), "a.env".into(), 1),
                ("internal-token".into(), "b.txt".into(), 2),
                ("internal-token".into(), "ignored.env".into(), 1),
            ],
            "{:#?}",
            all.findings
        );
        let ignored = all
            .findings
            .iter()
            .find(|f| f.file.ends_with("ignored.env"))
            .unwrap();
        assert_eq!(
            ignored.fingerprint,
            format!("{}:internal-token:1", ignored.file)
        );
        (rules, ignored.fingerprint.clone())
    };
    let (rules, _) = report_before;
    // Scanned from inside the folder, the fingerprint is relative to it.
    let report = scan(
        &rules,
        std::slice::from_ref(&scanned),
        false,
        &Options::default(),
    )
    .unwrap();
    let shown: Vec<String> = report
        .findings
        .iter()
        .map(|f| f.fingerprint.clone())
        .collect();
    assert_eq!(shown.len(), 3, "{shown:?}");
    std::fs::write(
        scanned.join(".gitleaksignore"),
        format!(
            "{}\n",
            shown.iter().find(|s| s.contains("ignored.env")).unwrap()
        ),
    )
    .unwrap();
    let report = scan(&rules, &[scanned], false, &Options::default()).unwrap();
    assert_eq!(report.findings.len(), 2, "{:#?}", report.findings);
}

#[test]
fn configuration_errors_name_the_file_the_rule_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad_regex = write(
        d,
        "a.toml",
        "[[rules]]\nid = \"x\"\nregex = '''(unclosed'''\n",
    );
    let e = Rules::compile(&config::load(&bad_regex).unwrap(), &bad_regex).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("a.toml") && msg.contains("rule `x`: regex:"),
        "{msg}"
    );

    let unknown = write(d, "b.toml", "[[rules]]\nid = \"x\"\nregx = 'a'\n");
    let msg = config::load(&unknown).unwrap_err().to_string();
    assert!(
        msg.contains("b.toml") && msg.contains("regx") && msg.contains("line 3"),
        "{msg}"
    );

    let group = write(
        d,
        "c.toml",
        "[[rules]]\nid = \"x\"\nregex = 'a(b)'\nsecretGroup = 2\n",
    );
    let msg = Rules::compile(&config::load(&group).unwrap(), &group)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("secretGroup 2 but the regex has 1 capture groups"),
        "{msg}"
    );

    let composite = write(
        d,
        "d.toml",
        "[[rules]]\nid = \"x\"\nregex = 'a'\n[[rules.required]]\nid = \"y\"\n",
    );
    let msg = Rules::compile(&config::load(&composite).unwrap(), &composite)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("composite rules"), "{msg}");

    let empty = write(d, "e.toml", "title = 'nothing'\n");
    let msg = Rules::compile(&config::load(&empty).unwrap(), &empty)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no [[rules]]"), "{msg}");
}

#[test]
fn entropy_is_shannon_bits_per_character() {
    assert_eq!(assay_scan::shannon_entropy(""), 0.0);
    assert_eq!(assay_scan::shannon_entropy("aaaa"), 0.0);
    assert_eq!(assay_scan::shannon_entropy("abab"), 1.0);
    assert_eq!(assay_scan::shannon_entropy("abcd"), 2.0);
}

#[test]
fn binary_and_large_files_are_skipped_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut bin = token("ghp_", 36).into_bytes();
    bin.push(0);
    std::fs::write(d.join("blob.bin"), bin).unwrap();
    write(
        d,
        "big.txt",
        &format!("{}\n{}", token("ghp_", 36), "x".repeat(200)),
    );
    let report = scan(
        &Rules::default_rules(),
        &[d.to_path_buf()],
        false,
        &Options {
            max_file_size: 100,
            ..Options::default()
        },
    )
    .unwrap();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    let mut skipped: Vec<String> = report.skipped.iter().map(|s| s.reason.clone()).collect();
    skipped.sort();
    assert_eq!(
        skipped,
        vec!["binary".to_string(), "larger than 100 bytes".to_string()]
    );
}
