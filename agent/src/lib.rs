//! Agent library.
