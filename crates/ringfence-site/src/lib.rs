//! The TKG flow catalog, site files, and flow resolution.
