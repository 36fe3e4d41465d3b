//! Tests of the COMMAND replies.
