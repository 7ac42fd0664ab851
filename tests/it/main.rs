//! Integration tests: one binary that starts real servers on port 0 and talks to them
//! over real sockets.

mod cli_smoke;
mod lmtp;
mod store;
mod verp;
mod policy;
mod golden;
mod corpus;
mod parse_props;
mod field_manual;
mod rules;
mod ops;
mod ingest;
mod follow;
mod milter;
mod packaging;
mod postfix_e2e;
mod crash;
mod hostile;
mod fuzz_regressions;
mod variants;
