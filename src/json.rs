//! Canonical JSON: the bytes hoist writes for every OCI document.
//!
//! Going through `serde_json::Value` sorts every object's keys, so every document comes out the
//! same way in every run, whatever order its fields and maps are declared or filled in.

use serde::Serialize;

use crate::error::{Error, Result};

/// Serializes `value` compactly with object keys sorted.
pub fn canonical(value: &impl Serialize, what: &str) -> Result<Vec<u8>> {
    let json_error = |source| Error::Json { what: what.to_owned(), source };
    let tree = serde_json::to_value(value).map_err(json_error)?;
    serde_json::to_vec(&tree).map_err(json_error)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[test]
    fn keys_come_out_sorted_whatever_the_map_order() {
        let map: HashMap<String, u32> = (0..50).map(|i| (format!("k{i:02}"), i)).collect();
        let text = String::from_utf8(super::canonical(&map, "test").unwrap()).unwrap();
        let positions: Vec<usize> = (0..50).map(|i| text.find(&format!("\"k{i:02}\"")).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }
}
