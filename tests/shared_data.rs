//! Reads the real FER2013 folders beside the checkout (`../shared/data/fer2013`) when they are
//! there; skips, saying so, when they are not (CI machines and fresh clones elsewhere).

use ferlite::data::{load, BadInput, Split};
use std::path::PathBuf;

fn shared_fer2013() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/fer2013");
    if path.join("val").is_dir() {
        Some(path)
    } else {
        eprintln!("skipping: {} not present", path.display());
        None
    }
}

#[test]
fn loads_the_public_test_split_with_its_documented_class_counts() {
    let Some(root) = shared_fer2013() else { return };
    let val = load(&root, Some(Split::Val), BadInput::Abort).unwrap();
    assert_eq!(val.len(), 3589);
    assert_eq!(val.skipped, 0);
    assert_eq!(val.class_counts(), [467, 56, 496, 895, 653, 415, 607]);
    assert!(val.sources.iter().all(|s| s.contains("PublicTest_")));
}
