#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| vellum_spec::fuzzing::evidence_bundle(data));
