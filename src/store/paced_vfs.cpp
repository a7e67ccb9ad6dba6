#include "store/paced_vfs.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>

namespace chat::store {
namespace {

constexpr const char* kName = "chat-paced";

sqlite3_vfs* g_real = nullptr;       // the default VFS everything is forwarded to
sqlite3_int64 g_chunk = 256 * 1024;  // set once, before registration
std::atomic<std::uint64_t> g_syncs{0};
std::atomic<std::uint64_t> g_fallbacks{0};

// Our file: its own state first, the real VFS's file right after (szOsFile covers both).
struct PacedFile {
  sqlite3_file base;               // pMethods = &kMethods
  sqlite3_file* real;              // points just past this struct
  bool paced;                      // main database or WAL: written back every g_chunk bytes
  int fd;                          // the real file's descriptor, or -1: pace with xSync instead
  sqlite3_int64 unsynced;          // bytes written since the last chunk was started
  sqlite3_int64 lo, hi;            // the byte range those writes span
  sqlite3_int64 prev_lo, prev_hi;  // the chunk started before (prev_hi == 0: none)
};
constexpr std::size_t kHeader = (sizeof(PacedFile) + 15) / 16 * 16;

PacedFile& self(sqlite3_file* f) { return *reinterpret_cast<PacedFile*>(f); }
sqlite3_file* real(sqlite3_file* f) { return self(f).real; }
const sqlite3_io_methods& rm(sqlite3_file* f) { return *real(f)->pMethods; }

// The descriptor of a file the unix VFS opened. SQLite does not expose it; its unixFile has
// begun { pMethods, pVfs, pInode, int h } since 3.5 (2007). Trusted only when it names the
// very file that was opened (same device and inode), else the file is paced with xSync.
int real_fd(sqlite3_file* file, const char* name) {
  struct UnixFileHead {
    const sqlite3_io_methods* methods;
    sqlite3_vfs* vfs;
    void* inode;
    int h;
  };
  if (!name || std::strcmp(g_real->zName, "unix") != 0) return -1;
  const int fd = reinterpret_cast<const UnixFileHead*>(file)->h;
  struct stat by_fd {}, by_name {};
  if (fd < 0 || ::fstat(fd, &by_fd) != 0 || ::stat(name, &by_name) != 0) return -1;
  return by_fd.st_dev == by_name.st_dev && by_fd.st_ino == by_name.st_ino ? fd : -1;
}

/// Starts the write-back of the chunk just written and waits for the one before (so at most
/// two are queued at the disk), without a device flush: PostgreSQL's checkpoint_flush_after
/// and RocksDB's bytes_per_sync do the same. Durability stays SQLite's xSync's business.
int write_back(PacedFile& p) {
  if (p.fd < 0) return p.real->pMethods->xSync(p.real, SQLITE_SYNC_NORMAL);
  if (::sync_file_range(p.fd, p.lo, p.hi - p.lo, SYNC_FILE_RANGE_WRITE) != 0)
    return SQLITE_IOERR_FSYNC;
  constexpr unsigned kWait =
      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
  if (p.prev_hi > 0 && ::sync_file_range(p.fd, p.prev_lo, p.prev_hi - p.prev_lo, kWait) != 0)
    return SQLITE_IOERR_FSYNC;
  p.prev_lo = p.lo;
  p.prev_hi = p.hi;
  return SQLITE_OK;
}

int x_close(sqlite3_file* f) { return rm(f).xClose(real(f)); }

int x_read(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
  return rm(f).xRead(real(f), buf, n, off);
}

int x_write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
  PacedFile& p = self(f);
  int rc = rm(f).xWrite(p.real, buf, n, off);
  if (rc != SQLITE_OK || !p.paced) return rc;
  p.lo = p.unsynced == 0 ? off : std::min(p.lo, off);
  p.hi = p.unsynced == 0 ? off + n : std::max(p.hi, off + n);
  p.unsynced += n;
  if (p.unsynced >= g_chunk) {
    p.unsynced = 0;
    rc = write_back(p);
    g_syncs.fetch_add(1, std::memory_order_relaxed);
  }
  return rc;
}

int x_truncate(sqlite3_file* f, sqlite3_int64 size) { return rm(f).xTruncate(real(f), size); }

int x_sync(sqlite3_file* f, int flags) {
  PacedFile& p = self(f);
  p.unsynced = 0;
  p.prev_hi = 0;
  return rm(f).xSync(p.real, flags);
}

int x_file_size(sqlite3_file* f, sqlite3_int64* size) { return rm(f).xFileSize(real(f), size); }
int x_lock(sqlite3_file* f, int level) { return rm(f).xLock(real(f), level); }
int x_unlock(sqlite3_file* f, int level) { return rm(f).xUnlock(real(f), level); }
int x_check_reserved(sqlite3_file* f, int* out) { return rm(f).xCheckReservedLock(real(f), out); }
int x_sector_size(sqlite3_file* f) { return rm(f).xSectorSize(real(f)); }
int x_device_characteristics(sqlite3_file* f) { return rm(f).xDeviceCharacteristics(real(f)); }

int x_file_control(sqlite3_file* f, int op, void* arg) {
  return rm(f).xFileControl(real(f), op, arg);
}

// Shared memory (the WAL index) and memory mapping: versions 2 and 3 of the methods.
int x_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  if (rm(f).iVersion < 2) return SQLITE_IOERR_SHMMAP;
  return rm(f).xShmMap(real(f), region, size, extend, out);
}
int x_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  if (rm(f).iVersion < 2) return SQLITE_IOERR_SHMLOCK;
  return rm(f).xShmLock(real(f), offset, n, flags);
}
void x_shm_barrier(sqlite3_file* f) {
  if (rm(f).iVersion >= 2) rm(f).xShmBarrier(real(f));
}
int x_shm_unmap(sqlite3_file* f, int delete_flag) {
  if (rm(f).iVersion < 2) return SQLITE_OK;
  return rm(f).xShmUnmap(real(f), delete_flag);
}
int x_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  if (rm(f).iVersion < 3) {
    *out = nullptr;  // "no mapping": SQLite reads instead
    return SQLITE_OK;
  }
  return rm(f).xFetch(real(f), off, n, out);
}
int x_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  if (rm(f).iVersion < 3) return SQLITE_OK;
  return rm(f).xUnfetch(real(f), off, p);
}

const sqlite3_io_methods kMethods = {
    3,
    x_close,
    x_read,
    x_write,
    x_truncate,
    x_sync,
    x_file_size,
    x_lock,
    x_unlock,
    x_check_reserved,
    x_file_control,
    x_sector_size,
    x_device_characteristics,
    x_shm_map,
    x_shm_lock,
    x_shm_barrier,
    x_shm_unmap,
    x_fetch,
    x_unfetch,
};

int v_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  PacedFile& p = self(f);
  p.real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + kHeader);
  p.paced = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0;
  p.fd = -1;
  p.unsynced = p.lo = p.hi = p.prev_lo = p.prev_hi = 0;
  const int rc = g_real->xOpen(g_real, name, p.real, flags, out_flags);
  if (rc == SQLITE_OK && p.paced) {
    p.fd = real_fd(p.real, name);
    if (p.fd < 0) g_fallbacks.fetch_add(1, std::memory_order_relaxed);
  }
  // SQLite closes a file whose xOpen failed only if it has methods: mirror the real file's.
  p.base.pMethods = p.real->pMethods ? &kMethods : nullptr;
  return rc;
}

// The rest of the VFS: forwarded with the real VFS as its first argument.
int v_delete(sqlite3_vfs*, const char* path, int sync_dir) {
  return g_real->xDelete(g_real, path, sync_dir);
}
int v_access(sqlite3_vfs*, const char* path, int flags, int* out) {
  return g_real->xAccess(g_real, path, flags, out);
}
int v_full_pathname(sqlite3_vfs*, const char* path, int n, char* out) {
  return g_real->xFullPathname(g_real, path, n, out);
}
void* v_dl_open(sqlite3_vfs*, const char* path) { return g_real->xDlOpen(g_real, path); }
void v_dl_error(sqlite3_vfs*, int n, char* msg) { g_real->xDlError(g_real, n, msg); }
void (*v_dl_sym(sqlite3_vfs*, void* h, const char* sym))(void) {
  return g_real->xDlSym(g_real, h, sym);
}
void v_dl_close(sqlite3_vfs*, void* h) { g_real->xDlClose(g_real, h); }
int v_randomness(sqlite3_vfs*, int n, char* out) { return g_real->xRandomness(g_real, n, out); }
int v_sleep(sqlite3_vfs*, int us) { return g_real->xSleep(g_real, us); }
int v_current_time(sqlite3_vfs*, double* out) { return g_real->xCurrentTime(g_real, out); }
int v_get_last_error(sqlite3_vfs*, int n, char* out) {
  return g_real->xGetLastError ? g_real->xGetLastError(g_real, n, out) : 0;
}
int v_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  if (g_real->iVersion >= 2 && g_real->xCurrentTimeInt64)
    return g_real->xCurrentTimeInt64(g_real, out);
  double julian_days = 0;
  const int rc = g_real->xCurrentTime(g_real, &julian_days);
  *out = static_cast<sqlite3_int64>(julian_days * 86400000.0);
  return rc;
}

sqlite3_vfs g_vfs{};

}  // namespace

const char* paced_vfs(std::size_t chunk_bytes) {
  static std::once_flag once;
  static bool registered = false;
  std::call_once(once, [&] {
    g_real = sqlite3_vfs_find(nullptr);
    if (!g_real || chunk_bytes == 0) return;
    g_chunk = static_cast<sqlite3_int64>(chunk_bytes);
    g_vfs.iVersion = 2;  // not xSetSystemCall & co.: those are for SQLite's own tests
    g_vfs.szOsFile = static_cast<int>(kHeader) + g_real->szOsFile;
    g_vfs.mxPathname = g_real->mxPathname;
    g_vfs.zName = kName;
    g_vfs.xOpen = v_open;
    g_vfs.xDelete = v_delete;
    g_vfs.xAccess = v_access;
    g_vfs.xFullPathname = v_full_pathname;
    g_vfs.xDlOpen = v_dl_open;
    g_vfs.xDlError = v_dl_error;
    g_vfs.xDlSym = v_dl_sym;
    g_vfs.xDlClose = v_dl_close;
    g_vfs.xRandomness = v_randomness;
    g_vfs.xSleep = v_sleep;
    g_vfs.xCurrentTime = v_current_time;
    g_vfs.xGetLastError = v_get_last_error;
    g_vfs.xCurrentTimeInt64 = v_current_time_int64;
    registered = sqlite3_vfs_register(&g_vfs, 0) == SQLITE_OK;
  });
  return registered ? kName : nullptr;
}

std::uint64_t paced_vfs_syncs() { return g_syncs.load(std::memory_order_relaxed); }
std::uint64_t paced_vfs_fallbacks() { return g_fallbacks.load(std::memory_order_relaxed); }

}  // namespace chat::store
