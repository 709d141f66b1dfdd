//! The WebSocket endpoint: ESP-IDF handshake checks and the session loop (owned by the ws work).
