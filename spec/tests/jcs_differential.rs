//! RFC 8785 differential test: Vellum's canonical form of random JSON
//! (any Unicode in keys and strings, control characters, supplementary
//! planes, integers and doubles across their range) equals that of an
//! independent implementation, `serde_json_canonicalizer`; and
//! canonicalizing is idempotent through Vellum's strict parser.

use proptest::prelude::*;
use serde_json::Value;
use vellum_spec::jcs::{canonicalize, parse_strict, MAX_SAFE_INTEGER};

fn arb_json() -> impl Strategy<Value = Value> {
    let safe = MAX_SAFE_INTEGER as i64;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-safe..=safe).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
        (-1e6f64..1e6).prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        any::<String>().prop_map(Value::String),
        "[a-z\u{e000}-\u{e0ff}\u{1f600}-\u{1f64f}\u{0}-\u{1f}\"\\\\]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    any::<String>(),
                    "[a-z\u{e000}-\u{e0ff}\u{1f600}-\u{1f64f}]{0,4}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn same_bytes_as_an_independent_jcs(v in arb_json()) {
        let ours = canonicalize(&v).unwrap();
        let theirs = serde_json_canonicalizer::to_vec(&v).unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        let again = canonicalize(&parse_strict(&ours).unwrap()).unwrap();
        prop_assert_eq!(again, ours);
    }
}
