//! Suppression-list exports (txt, csv, json, postfix access table), written atomically.
