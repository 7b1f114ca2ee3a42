//! The JSON the page reads: the same shapes and enum strings as the CLI's `--json` output,
//! from one place (`centinela_proto::json`), and the parsers for the enums an operator sends.

pub use centinela_proto::json::{
    button, camera, candidate, clearance, cluster, incident, parse_kind, parse_priority,
    parse_resolution, unit,
};
