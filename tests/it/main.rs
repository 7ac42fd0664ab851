//! Integration tests: one binary that starts real servers on port 0 and talks to them
//! over real sockets.

mod cli_smoke;
