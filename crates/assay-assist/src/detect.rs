//! Which test tools a repository uses, from the files it holds: configuration files
//! (`pytest.ini`, `playwright.config.ts`, `go.mod`, `Cargo.toml`), `package.json`'s
//! dependencies and scripts, and test files by their tools' naming rules (`test_*.py`,
//! `*.postman_collection.json`, `*.jmx`, k6 scripts).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Folders never looked into: dependencies, build output, caches, version control.
const SKIPPED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "target",
    ".venv",
    "venv",
    "env",
    ".env",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "dist",
    "build",
    "vendor",
    ".next",
    ".nuxt",
    "coverage",
    ".cache",
    ".idea",
    ".vscode",
];
/// How deep the walk goes below the root.
const MAX_DEPTH: usize = 8;
/// At most this many files are looked at: a huge tree is sampled, never walked for minutes.
const MAX_FILES: usize = 50_000;
/// Script files larger than this are not read when looking for a k6 import.
const MAX_SCRIPT_BYTES: u64 = 256 * 1024;

/// A test tool Assay can write a workflow for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    Pytest,
    NodeTest,
    Jest,
    Vitest,
    Go,
    Nextest,
    Playwright,
    Cypress,
    K6,
    Postman,
    Jmeter,
}

impl Tool {
    pub const ALL: &[Tool] = &[
        Tool::Pytest,
        Tool::NodeTest,
        Tool::Jest,
        Tool::Vitest,
        Tool::Go,
        Tool::Nextest,
        Tool::Playwright,
        Tool::Cypress,
        Tool::K6,
        Tool::Postman,
        Tool::Jmeter,
    ];

    /// The name used in workflow names, labels and `--tool`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Pytest => "pytest",
            Tool::NodeTest => "node-test",
            Tool::Jest => "jest",
            Tool::Vitest => "vitest",
            Tool::Go => "go",
            Tool::Nextest => "nextest",
            Tool::Playwright => "playwright",
            Tool::Cypress => "cypress",
            Tool::K6 => "k6",
            Tool::Postman => "postman",
            Tool::Jmeter => "jmeter",
        }
    }

    /// A tool by its name or a common alias (`newman` is Postman, `cargo` is nextest).
    pub fn parse(text: &str) -> Option<Tool> {
        let t = text.trim().to_ascii_lowercase();
        let tool = match t.as_str() {
            "pytest" | "py.test" | "python" => Tool::Pytest,
            "node-test" | "node:test" | "node" => Tool::NodeTest,
            "jest" => Tool::Jest,
            "vitest" => Tool::Vitest,
            "go" | "golang" | "go-test" => Tool::Go,
            "nextest" | "cargo-nextest" | "cargo" | "rust" => Tool::Nextest,
            "playwright" => Tool::Playwright,
            "cypress" => Tool::Cypress,
            "k6" => Tool::K6,
            "postman" | "newman" => Tool::Postman,
            "jmeter" => Tool::Jmeter,
            _ => return None,
        };
        Some(tool)
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tool found in the repository and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detected {
    pub tool: Tool,
    /// What gave it away (`pytest.ini`, `package.json: devDependencies.jest`), relative paths.
    pub evidence: Vec<String>,
    /// The tool's test files or units, relative and sorted: pytest and node test files, Go
    /// packages (`./cart`), k6 scripts, Postman collections, JMeter plans.
    pub files: Vec<String>,
}

/// What a repository holds that a workflow needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    /// The repository's folder, absolute.
    pub root: PathBuf,
    /// A name for workflows: the folder's name in lowercase letters, digits and dashes.
    pub name: String,
    /// The command that installs Node dependencies (`npm ci` with a lock file), if any.
    pub node_install: Option<String>,
    /// `package.json`'s dependencies and devDependencies.
    pub node_deps: BTreeSet<String>,
    /// A virtual environment's interpreter inside the repository (`.venv/bin/python`).
    pub python: Option<String>,
    /// Every tool found, in [`Tool::ALL`] order.
    pub tools: Vec<Detected>,
}

impl Project {
    pub fn get(&self, tool: Tool) -> Option<&Detected> {
        self.tools.iter().find(|d| d.tool == tool)
    }
}

/// Why a folder could not be looked at.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not a folder")]
    NotAFolder(String),
}

/// The tools `root` uses. Reads file names under it (dependencies and build output skipped),
/// a few configuration files, and small `.js` files when looking for k6 imports.
pub fn detect(root: &Path) -> Result<Project, DetectError> {
    let root = std::path::absolute(root).map_err(|source| DetectError::Read {
        path: root.display().to_string(),
        source,
    })?;
    let meta = std::fs::metadata(&root).map_err(|source| DetectError::Read {
        path: root.display().to_string(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(DetectError::NotAFolder(root.display().to_string()));
    }
    let files = walk(&root);
    let name = sanitize_name(
        root.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .as_deref()
            .unwrap_or("project"),
    );
    let on_disk = root.clone();
    let read = move |rel: &str| {
        let path = on_disk.join(rel);
        if std::fs::metadata(&path).map_or(true, |m| m.len() > MAX_SCRIPT_BYTES) {
            return None;
        }
        std::fs::read_to_string(path).ok()
    };
    let exists = |rel: &str| root.join(rel).exists();
    Ok(detect_in(root.clone(), name, files, &read, &exists))
}

/// The largest listing [`detect_listing`] looks at, in files.
pub const MAX_LISTED_FILES: usize = MAX_FILES;

/// The tools of a repository described by its file listing instead of a folder (what an
/// agent sends to MCP `draft_workflow`): nothing on this machine's disk is read. `contents`
/// holds the text of the files detection reads (`package.json`, `pyproject.toml`, k6
/// scripts…) that the caller chose to send; a listed file without content counts by its name
/// only. `root` is where the repository will be when the workflow runs. Listings longer than
/// [`MAX_LISTED_FILES`] are cut, as a walk of a folder is.
pub fn detect_listing<I>(
    root: &str,
    name: &str,
    files: I,
    contents: &BTreeMap<String, String>,
) -> Project
where
    I: IntoIterator<Item = String>,
{
    let files: BTreeSet<String> = files
        .into_iter()
        .map(|f| f.trim_start_matches("./").to_string())
        .filter(|f| !f.is_empty() && !f.ends_with('/'))
        .take(MAX_LISTED_FILES)
        .collect();
    let read = |rel: &str| {
        contents
            .get(rel)
            .filter(|t| t.len() as u64 <= MAX_SCRIPT_BYTES)
            .cloned()
    };
    let exists = |rel: &str| files.contains(rel);
    detect_in(
        PathBuf::from(root),
        sanitize_name(name),
        files.clone(),
        &read,
        &exists,
    )
}

/// Detection over a listing: `read` answers a file's text (None when absent or too big),
/// `exists` whether a path (listed or not, like `.venv/bin/python`) is there.
fn detect_in(
    root: PathBuf,
    name: String,
    files: BTreeSet<String>,
    read_file: &dyn Fn(&str) -> Option<String>,
    exists: &dyn Fn(&str) -> bool,
) -> Project {
    let read = |rel: &str| read_file(rel).unwrap_or_default();
    let has = |rel: &str| files.contains(rel);

    let mut found: BTreeMap<Tool, Detected> = BTreeMap::new();
    let mut add = |tool: Tool, evidence: String| {
        let d = found.entry(tool).or_insert_with(|| Detected {
            tool,
            evidence: Vec::new(),
            files: Vec::new(),
        });
        if !d.evidence.contains(&evidence) {
            d.evidence.push(evidence);
        }
    };

    // Python: pytest's configuration places, then its test files.
    let py_tests: Vec<String> = files
        .iter()
        .filter(|f| {
            let n = file_name(f);
            n.ends_with(".py") && (n.starts_with("test_") || n.ends_with("_test.py"))
        })
        .cloned()
        .collect();
    for (file, marker) in [
        ("pytest.ini", None),
        ("pyproject.toml", Some("[tool.pytest")),
        ("setup.cfg", Some("[tool:pytest]")),
        ("tox.ini", Some("[pytest]")),
    ] {
        if has(file) && marker.is_none_or(|m| read(file).contains(m)) {
            add(Tool::Pytest, file.to_string());
        }
    }
    for f in files.iter().filter(|f| file_name(f) == "conftest.py") {
        add(Tool::Pytest, f.clone());
    }
    for f in files.iter().filter(|f| {
        let n = file_name(f);
        !f.contains('/') && n.starts_with("requirements") && n.ends_with(".txt")
    }) {
        if read(f)
            .lines()
            .any(|l| l.trim_start().starts_with("pytest"))
        {
            add(Tool::Pytest, format!("{f}: pytest"));
        }
    }
    if !py_tests.is_empty() {
        add(
            Tool::Pytest,
            format!("{} test file{}", py_tests.len(), plural(py_tests.len())),
        );
    }
    let python = [".venv/bin/python", "venv/bin/python"]
        .into_iter()
        .find(|p| exists(p))
        .map(str::to_string);

    // Node: package.json's dependencies and scripts.
    let mut node_deps = BTreeSet::new();
    let mut scripts: BTreeMap<String, String> = BTreeMap::new();
    let pkg = if has("package.json") {
        serde_json::from_str::<serde_json::Value>(&read("package.json")).ok()
    } else {
        None
    };
    {
        if let Some(pkg) = pkg {
            for section in ["dependencies", "devDependencies"] {
                if let Some(deps) = pkg.get(section).and_then(|d| d.as_object()) {
                    for dep in deps.keys() {
                        node_deps.insert(dep.clone());
                        let tool = match dep.as_str() {
                            "jest" => Some(Tool::Jest),
                            "vitest" => Some(Tool::Vitest),
                            "@playwright/test" | "playwright" => Some(Tool::Playwright),
                            "cypress" => Some(Tool::Cypress),
                            "newman" => Some(Tool::Postman),
                            _ => None,
                        };
                        if let Some(tool) = tool {
                            add(tool, format!("package.json: {section}.{dep}"));
                        }
                    }
                }
            }
            if let Some(s) = pkg.get("scripts").and_then(|s| s.as_object()) {
                for (k, v) in s {
                    if let Some(v) = v.as_str() {
                        scripts.insert(k.clone(), v.to_string());
                    }
                }
            }
        }
    }
    for (name, script) in &scripts {
        let words: Vec<&str> = script.split_whitespace().collect();
        let runs = |w: &str| words.contains(&w);
        if runs("jest") {
            add(Tool::Jest, format!("package.json: scripts.{name}"));
        }
        if runs("vitest") {
            add(Tool::Vitest, format!("package.json: scripts.{name}"));
        }
        if words.windows(2).any(|w| w == ["node", "--test"]) {
            add(Tool::NodeTest, format!("package.json: scripts.{name}"));
        }
    }
    let node_install = if has("package-lock.json") || has("npm-shrinkwrap.json") {
        Some("npm ci".to_string())
    } else if has("yarn.lock") {
        Some("yarn install --frozen-lockfile".to_string())
    } else if has("pnpm-lock.yaml") {
        Some("pnpm install --frozen-lockfile".to_string())
    } else if !node_deps.is_empty() {
        Some("npm install".to_string())
    } else {
        None
    };
    for f in files.iter().filter(|f| !f.contains('/')) {
        let n = f.as_str();
        if n.starts_with("playwright.config.") {
            add(Tool::Playwright, f.clone());
        }
        if n.starts_with("cypress.config.") || n == "cypress.json" {
            add(Tool::Cypress, f.clone());
        }
        if n.starts_with("jest.config.") {
            add(Tool::Jest, f.clone());
        }
        if n.starts_with("vitest.config.") {
            add(Tool::Vitest, f.clone());
        }
    }
    let node_tests: Vec<String> = files
        .iter()
        .filter(|f| is_node_test_file(f))
        .cloned()
        .collect();

    // Go and Rust.
    let mut go_packages = BTreeSet::new();
    if has("go.mod") {
        add(Tool::Go, "go.mod".to_string());
        for f in files.iter().filter(|f| f.ends_with("_test.go")) {
            go_packages.insert(match f.rsplit_once('/') {
                Some((dir, _)) => format!("./{dir}"),
                None => ".".to_string(),
            });
        }
    }
    if has("Cargo.toml") {
        add(Tool::Nextest, "Cargo.toml".to_string());
        if has(".config/nextest.toml") {
            add(Tool::Nextest, ".config/nextest.toml".to_string());
        }
    }

    // Load and API tests by their file names (and k6 by its import).
    let collections: Vec<String> = files
        .iter()
        .filter(|f| f.ends_with(".postman_collection.json"))
        .cloned()
        .collect();
    for c in &collections {
        add(Tool::Postman, c.clone());
    }
    let plans: Vec<String> = files
        .iter()
        .filter(|f| f.ends_with(".jmx"))
        .cloned()
        .collect();
    for p in &plans {
        add(Tool::Jmeter, p.clone());
    }
    let k6_scripts: Vec<String> = files
        .iter()
        .filter(|f| is_k6_script(f, read_file))
        .cloned()
        .collect();
    for s in &k6_scripts {
        add(Tool::K6, s.clone());
    }

    // Each tool's files.
    for d in found.values_mut() {
        d.files = match d.tool {
            Tool::Pytest => py_tests.clone(),
            Tool::NodeTest => node_tests.clone(),
            Tool::Go => go_packages.iter().cloned().collect(),
            Tool::K6 => k6_scripts.clone(),
            Tool::Postman => collections.clone(),
            Tool::Jmeter => plans.clone(),
            _ => Vec::new(),
        };
    }
    // Newman named in package.json without a collection has nothing to run.
    found.retain(|_, d| d.tool != Tool::Postman || !d.files.is_empty());
    // Node's own runner when `npm test` runs it; Python only with test files or pytest's config.
    Project {
        root,
        name,
        node_install,
        node_deps,
        python,
        tools: found.into_values().collect(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn file_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// Node's test runner's default file patterns (`*.test.js`, `test-*.js`, `test/**/*.js`…).
fn is_node_test_file(rel: &str) -> bool {
    let n = file_name(rel);
    let Some((stem, ext)) = n.rsplit_once('.') else {
        return false;
    };
    if !matches!(ext, "js" | "mjs" | "cjs") {
        return false;
    }
    stem == "test"
        || stem.ends_with(".test")
        || stem.ends_with("-test")
        || stem.ends_with("_test")
        || stem.starts_with("test-")
        || rel.starts_with("test/")
}

/// A k6 script: named `*.k6.js`/`*.k6.ts`, or a small script that imports a `k6` module.
fn is_k6_script(rel: &str, read: &dyn Fn(&str) -> Option<String>) -> bool {
    let n = file_name(rel);
    if n.ends_with(".k6.js") || n.ends_with(".k6.ts") {
        return true;
    }
    if !(n.ends_with(".js") || n.ends_with(".ts")) || is_node_test_file(rel) {
        return false;
    }
    let text = read(rel).unwrap_or_default();
    ["from 'k6", "from \"k6", "require('k6", "require(\"k6"]
        .iter()
        .any(|m| text.contains(m))
}

/// The files detection looks at under `root`: relative paths (with `/`), sorted, without
/// dependencies, virtual environments and build output; bounded in depth and count.
pub fn list_files(root: &Path) -> BTreeSet<String> {
    walk(root)
}

/// Relative paths (with `/`) of the files under `root`, sorted; symbolic links not followed.
fn walk(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            if out.len() >= MAX_FILES {
                return out;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if depth < MAX_DEPTH && !SKIPPED_DIRS.contains(&name.as_str()) {
                    stack.push((entry.path(), path, depth + 1));
                }
            } else if kind.is_file() {
                out.insert(path);
            }
        }
    }
    out
}

/// `My Project_2` → `my-project-2`: letters, digits and single dashes, at most 40 characters.
pub fn sanitize_name(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.truncate(40);
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "project".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let p = detect(dir.path()).unwrap();
        (dir, p)
    }

    fn tools(p: &Project) -> Vec<&str> {
        p.tools.iter().map(|d| d.tool.as_str()).collect()
    }

    #[test]
    fn finds_each_tool_by_its_files() {
        let (_d, p) = project(&[
            ("pyproject.toml", "[tool.pytest.ini_options]\n"),
            ("tests/test_api.py", ""),
            ("tests/conftest.py", ""),
            (
                "package.json",
                r#"{"devDependencies": {"@playwright/test": "1", "vitest": "2", "jest": "29"}, "scripts": {"test": "node --test"}}"#,
            ),
            ("package-lock.json", "{}"),
            ("go.mod", "module x\n"),
            ("cart/cart_test.go", ""),
            ("api/api_test.go", ""),
            ("Cargo.toml", "[package]\n"),
            ("load/smoke.js", "import http from 'k6/http';\n"),
            ("postman/api.postman_collection.json", "{}"),
            ("perf/plan.jmx", "<jmeterTestPlan/>"),
            ("cypress.config.ts", ""),
            ("node_modules/jest/test_hidden.py", ""),
        ]);
        assert_eq!(
            tools(&p),
            [
                "pytest",
                "node-test",
                "jest",
                "vitest",
                "go",
                "nextest",
                "playwright",
                "cypress",
                "k6",
                "postman",
                "jmeter"
            ]
        );
        let py = p.get(Tool::Pytest).unwrap();
        assert_eq!(
            py.files,
            ["tests/test_api.py"],
            "node_modules is not walked"
        );
        assert!(py.evidence.contains(&"pyproject.toml".to_string()));
        assert_eq!(p.get(Tool::Go).unwrap().files, ["./api", "./cart"]);
        assert_eq!(p.get(Tool::K6).unwrap().files, ["load/smoke.js"]);
        assert_eq!(p.node_install.as_deref(), Some("npm ci"));
    }

    #[test]
    fn a_listing_finds_what_the_folder_does_without_reading_the_disk() {
        let files = [
            ("pyproject.toml", "[tool.pytest.ini_options]\n"),
            ("tests/test_api.py", ""),
            ("package.json", r#"{"devDependencies": {"jest": "29"}}"#),
            ("yarn.lock", ""),
            ("load/smoke.js", "import http from 'k6/http';\n"),
            ("load/other.js", "console.log(1)\n"),
            ("go.mod", "module x\n"),
            ("cart/cart_test.go", ""),
        ];
        let (_d, on_disk) = project(&files);
        let contents: BTreeMap<String, String> = files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        let listed = detect_listing(
            "/srv/checkout",
            "Shop API",
            files.iter().map(|(p, _)| format!("./{p}")),
            &contents,
        );
        assert_eq!(listed.tools, on_disk.tools);
        assert_eq!(listed.node_install, on_disk.node_install);
        assert_eq!(listed.name, "shop-api");
        assert_eq!(listed.root, PathBuf::from("/srv/checkout"));
        // Without contents, files count by their names only: no k6 import, no pytest config.
        let names_only = detect_listing(
            ".",
            "x",
            files.iter().map(|(p, _)| p.to_string()),
            &BTreeMap::new(),
        );
        assert!(names_only.get(Tool::K6).is_none());
        assert_eq!(
            names_only.get(Tool::Pytest).unwrap().evidence,
            ["1 test file"]
        );
        // A listed path that escapes is just a name: nothing is read for it.
        let escaping = detect_listing(
            ".",
            "x",
            ["../../etc/passwd".to_string(), "/etc/hostname".to_string()],
            &BTreeMap::new(),
        );
        assert!(escaping.tools.is_empty());
    }

    #[test]
    fn an_empty_folder_has_no_tools_and_a_file_is_refused() {
        let (dir, p) = project(&[("README.md", "hi")]);
        assert!(p.tools.is_empty());
        assert!(matches!(
            detect(&dir.path().join("README.md")),
            Err(DetectError::NotAFolder(_))
        ));
    }

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(sanitize_name("My Project_2"), "my-project-2");
        assert_eq!(sanitize_name("..."), "project");
    }
}
