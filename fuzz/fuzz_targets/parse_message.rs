//! Any bytes as a message: parse and classify must not panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static CLASSIFIER: LazyLock<rebound::classify::Classifier> =
    LazyLock::new(rebound::classify::Classifier::with_default_rules);

fuzz_target!(|data: &[u8]| {
    let p = rebound::pipeline::process_message(data, &CLASSIFIER);
    let _ = rebound::pipeline::event_rows(&p, &Default::default(), 0);
});
