//! Tests: parse_props.
