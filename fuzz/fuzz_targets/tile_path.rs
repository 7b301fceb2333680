#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| vellum_spec::fuzzing::tile_path(data));
