//! LMTP server tests over real loopback sockets (servers on port 0): `support` starts a
//! server in-process through the library and speaks LMTP; `verbs` the commands and
//! pipelining; `limits` every limit and the 451 path; `lifecycle` the release binary
//! (SIGTERM drain, systemd activation, harness samples).

pub mod support;
mod lifecycle;
mod limits;
mod verbs;
