#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| vellum_server::fuzzing::event_fields(data));
