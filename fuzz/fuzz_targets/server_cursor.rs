#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| vellum_server::fuzzing::cursor(data));
