#pragma once
// A SQLite VFS that paces the background writers' bytes to the disk. The store's indexer
// commits megabytes at once (the WAL frames of thousands of messages) and its checkpoints copy
// as much into the database file, each then synced in one go; the message journal's small
// fdatasync queued behind such a burst on this machine's virtual disk waits for all of it
// (chat-fsync-bench: 16 MiB written then synced every 200 ms put the journal's p99.9 at 9.6 ms;
// written back every 256 KiB instead, 0.9 ms). Files opened through this VFS start the
// write-back of every `chunk` bytes written and wait for the chunk before (sync_file_range, no
// device flush), so at most two chunks are ever queued ahead of a journal commit. This never
// changes what SQLite guarantees: its own syncs stay, earlier writes only reach the disk
// sooner. Everything else is forwarded to the default VFS.
#include <cstddef>
#include <cstdint>

namespace chat::store {

/// Registers (once per process; not as the default VFS) the VFS, which writes back the main
/// database and WAL files it opens every `chunk_bytes` written, and returns its name for
/// sqlite3_open_v2. The chunk is fixed by the first call. Null if SQLite has no default VFS or
/// registration failed (then open the database without it).
const char* paced_vfs(std::size_t chunk_bytes = 256 * 1024);

/// Chunks written back by the pacing (not SQLite's own syncs) since the process started.
std::uint64_t paced_vfs_syncs();
/// Files paced with a full sync per chunk because their descriptor was not found (a SQLite
/// whose unix VFS changed its file structure): correct, but each chunk costs a device flush.
std::uint64_t paced_vfs_fallbacks();

}  // namespace chat::store
