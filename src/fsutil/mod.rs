//! File helpers that the rest of hoist shares, one concept per submodule: files replaced all
//! at once ([`atomic`]), small files read from outside, capped and only when regular
//! ([`small_file`]), the XDG base directories hoist keeps its own files in ([`xdg`]), and file
//! work from async code run off the async threads ([`blocking`]).

pub mod atomic;
pub mod blocking;
pub mod small_file;
pub mod xdg;
