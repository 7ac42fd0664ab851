//! Any text as a mail-log line: the Postfix and Sendmail parsers must not panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rebound::maillog::{parse_line, LogFormat};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for f in [LogFormat::Postfix, LogFormat::Sendmail, LogFormat::Auto] {
        let _ = parse_line(&text, f, 0);
    }
});
