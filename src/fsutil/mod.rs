//! File helpers that the rest of hoist shares, one concept per submodule: files replaced all
//! at once ([`atomic`]), the XDG base directories hoist keeps its own files in ([`xdg`]), and
//! file work from async code run off the async threads ([`blocking`]).
//! Small files read from outside, capped and only when regular, are [`crate::small_file`]'s.

pub mod atomic;
pub mod blocking;
pub mod xdg;
