//! Prints what the decoder says about a message given on the command line, e.g.
//! `cargo run -p espsim-protocol --example wire -- '{"type":"ping"}'`: the decoded message, or
//! the `code`, request `id` and text the device would put in its `error` reply.

fn main() {
    for arg in std::env::args().skip(1) {
        match espsim_protocol::decode(arg.as_bytes()) {
            Ok(message) => println!("ok {}: {message:?}", message.type_name()),
            Err(error) => println!("error code={} id={:?}: {error}", error.code(), error.id()),
        }
    }
}
