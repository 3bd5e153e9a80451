//! PROTOCOL.md stays true: its kind table matches the registry and every JSON example decodes.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use bytes::Bytes;
use chat_proto::{ClientMsg, ServerMsg, WireMessage};

const DOC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../PROTOCOL.md"));

fn all_kinds() -> BTreeSet<u32> {
    ClientMsg::KINDS
        .iter()
        .chain(ServerMsg::KINDS)
        .copied()
        .collect()
}

/// The last "kind N" mentioned in `text`.
fn last_kind_mention(text: &str) -> Option<u32> {
    text.rmatch_indices("kind ").find_map(|(i, _)| {
        let digits: String = text[i + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

#[test]
fn kind_table_lists_exactly_the_registry() {
    let documented: BTreeSet<u32> = DOC
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | kind | `name` | direction | section |
            (cells.len() == 6 && cells[2].starts_with('`'))
                .then(|| cells[1].parse().ok())
                .flatten()
        })
        .collect();
    assert_eq!(documented, all_kinds());
}

#[test]
fn every_json_example_decodes_as_its_kind() {
    let mut checked = BTreeSet::new();
    let mut rest = DOC;
    while let Some(start) = rest.find("```json\n") {
        let kind = last_kind_mention(&rest[..start]).expect("a kind is named before each example");
        let body_start = start + "```json\n".len();
        let end = rest[body_start..].find("```").unwrap() + body_start;
        let body = rest[body_start..end].trim();
        let bytes = Bytes::copy_from_slice(body.as_bytes());
        let client = ClientMsg::decode(kind, bytes.clone());
        let server = ServerMsg::decode(kind, bytes);
        assert!(
            client.is_ok() || server.is_ok(),
            "example for kind {kind} does not decode: {body}\nclient: {client:?}\nserver: {server:?}"
        );
        checked.insert(kind);
        rest = &rest[end..];
    }
    let mut expected = all_kinds();
    expected.remove(&chat_proto::kind::FILE_CHUNK); // binary: its layout is drawn instead
    assert_eq!(checked, expected, "every JSON kind has an example");
}

#[test]
fn error_code_table_names_known_codes_with_their_fatality() {
    let section = &DOC[DOC.find("## 10. Error codes").unwrap()..DOC.find("## 11.").unwrap()];
    let mut rows = 0;
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `code` | fatal | meaning |
        if cells.len() != 5 || !cells[1].starts_with('`') {
            continue;
        }
        let name = cells[1].trim_matches('`');
        let code: chat_proto::ErrorCode = serde_json::from_value(name.into()).unwrap();
        assert_eq!(code.as_str(), name, "{name} is not a code this build knows");
        assert_eq!(code.is_fatal(), cells[2] == "yes", "fatality of {name}");
        rows += 1;
    }
    assert!(rows >= 26, "only {rows} codes found in the table");
}
