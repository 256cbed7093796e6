#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cmdstream_fuzz::bounded(
        data,
        cmdstream_fuzz::DECODER_BOUND,
        cmdstream::fuzz::command_table,
    );
});
