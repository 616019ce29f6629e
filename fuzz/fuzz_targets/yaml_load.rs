//! Feeds arbitrary bytes to the workflow loader and validator (`assay validate` without the
//! file system): they must never panic, hang or overflow the stack, and what they report must
//! be consistent — every problem has a position, counts add up, and every loaded document can
//! locate its own root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let loaded = assay_spec::validate::check_bytes("fuzz.yaml", data);
    assert!(loaded.invalid() <= loaded.checked);
    assert!(loaded.documents.len() <= loaded.checked);
    for d in &loaded.diagnostics {
        assert!(d.line >= 1 && d.column >= 1, "unlocated problem: {d}");
        assert!(!d.message.is_empty());
        assert!(d.to_string().starts_with("fuzz.yaml:"));
    }
    for doc in &loaded.documents {
        assert!(doc.locations.locate("").is_some(), "document root has no location");
        assert!(doc.line >= 1);
    }
});
