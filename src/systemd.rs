//! systemd integration: sd_notify readiness and socket activation (LISTEN_FDS).
