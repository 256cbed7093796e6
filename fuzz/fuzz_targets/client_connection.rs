#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cmdstream_fuzz::bounded(
        data,
        cmdstream_fuzz::CONNECTION_BOUND,
        cmdstream::fuzz::client_connection,
    );
});
