#include "store/paced_vfs.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>

#include "unit/store/store_fixtures.hpp"

namespace chat::store {
namespace {

namespace fs = std::filesystem;

class PacedVfsTest : public ::testing::Test {
 protected:
  std::string path() const { return (dir_.path() / "t.db").string(); }

  /// Writes `bytes` of blob in one transaction through `vfs` (null: the default) in `mode`.
  void write_blob(const char* vfs, const char* mode, int bytes) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(path().c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
              SQLITE_OK);
    const std::string setup = std::string("PRAGMA journal_mode = ") + mode +
                              "; CREATE TABLE IF NOT EXISTS t(b BLOB);";
    ASSERT_EQ(sqlite3_exec(db, setup.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_stmt* s = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?1)", -1, &s, nullptr), SQLITE_OK);
    const std::string blob(static_cast<std::size_t>(bytes), 'p');
    sqlite3_bind_blob(s, 1, blob.data(), bytes, SQLITE_STATIC);
    EXPECT_EQ(sqlite3_step(s), SQLITE_DONE) << sqlite3_errmsg(db);
    sqlite3_finalize(s);
    EXPECT_EQ(sqlite3_close(db), SQLITE_OK);
  }

  /// Total blob bytes, read with the default VFS.
  sqlite3_int64 stored_bytes() {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    sqlite3_int64 n = -1;
    if (sqlite3_prepare_v2(db, "SELECT sum(length(b)) FROM t", -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
      n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
  }

  fixtures::TempDir dir_{"chat_paced_vfs_"};
};

TEST_F(PacedVfsTest, SyncsAfterEveryChunkWrittenAndStoresTheSameBytes) {
  const char* vfs = paced_vfs(256 * 1024);
  ASSERT_NE(vfs, nullptr);
  EXPECT_STREQ(paced_vfs(1), vfs);  // registered once; the first chunk stays
  ASSERT_NE(sqlite3_vfs_find(nullptr), sqlite3_vfs_find(vfs)) << "must not become the default";

  // Through the default VFS: no pacing.
  const std::uint64_t before = paced_vfs_syncs();
  write_blob(nullptr, "WAL", 1 << 20);
  EXPECT_EQ(paced_vfs_syncs(), before);

  // 4 MiB in one WAL transaction, then the checkpoint at close copies it into the database:
  // both files pass 256 KiB many times.
  write_blob(vfs, "WAL", 4 << 20);
  const std::uint64_t wal_syncs = paced_vfs_syncs() - before;
  EXPECT_GE(wal_syncs, 2u * 14) << "WAL and database file, ~16 chunks each";
  EXPECT_FALSE(fs::exists(path() + "-wal")) << "the last connection checkpointed and removed it";

  // A rollback journal (not paced) and the database file in place.
  write_blob(vfs, "DELETE", 2 << 20);
  EXPECT_GE(paced_vfs_syncs() - before - wal_syncs, 7u);

  EXPECT_EQ(stored_bytes(), (1 << 20) + (4 << 20) + (2 << 20));
  EXPECT_EQ(paced_vfs_fallbacks(), 0u) << "the unix VFS's descriptor was not found";
}

}  // namespace
}  // namespace chat::store
