mod kyverno_compat;
mod suites;
