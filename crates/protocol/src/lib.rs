//! placeholder
pub const MAX_MESSAGE_SIZE: usize = 4096;
