//! Replays the fuzzer's seed corpus (`fuzz/corpus/decode`) as an ordinary test, so every CI run
//! checks the inputs the fuzzer starts from (and any crash reproducer added there).

#[path = "../../../fuzz/fuzz_targets/harness.rs"]
mod harness;

#[test]
fn seed_corpus_passes_the_fuzz_check() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/decode");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("the seed corpus directory exists") {
        let path = entry.expect("readable directory entry").path();
        let data = std::fs::read(&path).expect("readable corpus file");
        harness::check(&data);
        count += 1;
    }
    assert!(count >= 10, "seed corpus has only {count} files");
}
