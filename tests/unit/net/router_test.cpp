#include "net/router.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace chat::net {
namespace {

using R = Router<std::string>;  // the "handler" is a name, so a test can see which one matched

R make_router() {
  R r;
  r.add("POST", "/api/auth/signup", "signup");
  r.add("POST", "/api/auth/login", "login");
  r.add("GET", "/api/auth/check-auth", "check");
  r.add("PUT", "/api/auth/update-profile", "update");
  r.add("GET", "/api/messages/users", "users");
  r.add("GET", "/api/messages/:id", "history");
  r.add("POST", "/api/messages/send/:id", "send");
  r.add("GET", "/api/a/:x/b/:y", "two");
  r.add("GET", "/", "root");
  return r;
}

TEST(Router, MatchesLiteralRoutesAndReturnsThePattern) {
  auto r = make_router();
  auto m = r.match("POST", "/api/auth/login");
  ASSERT_EQ(m.kind, R::Match::found);
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(*m.handler, "login");
  EXPECT_EQ(m.pattern, "/api/auth/login");
  EXPECT_TRUE(m.params.empty());

  auto root = r.match("GET", "/");
  ASSERT_EQ(root.kind, R::Match::found);
  EXPECT_EQ(*root.handler, "root");
  EXPECT_EQ(root.pattern, "/");
}

TEST(Router, CapturesParams) {
  auto r = make_router();
  auto m = r.match("GET", "/api/messages/65f1a2b3c4d5e6f708192a3b");
  ASSERT_EQ(m.kind, R::Match::found);
  EXPECT_EQ(*m.handler, "history");
  EXPECT_EQ(m.pattern, "/api/messages/:id");  // the pattern, not the path (metrics label)
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0].first, "id");
  EXPECT_EQ(param(m.params, "id"), "65f1a2b3c4d5e6f708192a3b");
  EXPECT_EQ(param(m.params, "missing"), "");

  auto two = r.match("GET", "/api/a/1/b/2");
  ASSERT_EQ(two.kind, R::Match::found);
  EXPECT_EQ(*two.handler, "two");
  EXPECT_EQ(param(two.params, "x"), "1");
  EXPECT_EQ(param(two.params, "y"), "2");

  auto send = r.match("POST", "/api/messages/send/abc");
  ASSERT_EQ(send.kind, R::Match::found);
  EXPECT_EQ(*send.handler, "send");
  EXPECT_EQ(param(send.params, "id"), "abc");
}

TEST(Router, FirstRegisteredRouteWins) {
  auto r = make_router();
  // "/api/messages/users" also matches "/api/messages/:id": registration order decides.
  auto m = r.match("GET", "/api/messages/users");
  ASSERT_EQ(m.kind, R::Match::found);
  EXPECT_EQ(*m.handler, "users");
  EXPECT_TRUE(m.params.empty());
}

TEST(Router, ParamsMatchOneSegmentOnly) {
  auto r = make_router();
  EXPECT_EQ(r.match("GET", "/api/messages/abc/def").kind, R::Match::not_found);
  EXPECT_EQ(r.match("GET", "/api/messages").kind, R::Match::not_found);
  // "/api/messages/send" is "/api/messages/:id" with id "send", a GET route: 405, not 404.
  auto send = r.match("POST", "/api/messages/send");
  EXPECT_EQ(send.kind, R::Match::method_not_allowed);
  EXPECT_EQ(send.allow, "GET, HEAD");
}

TEST(Router, NotFound) {
  auto r = make_router();
  auto m = r.match("GET", "/nope");
  EXPECT_EQ(m.kind, R::Match::not_found);
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_EQ(m.pattern, "");
  EXPECT_EQ(m.allow, "");
  EXPECT_EQ(r.match("GET", "/api/auth/LOGIN").kind, R::Match::not_found);  // case-sensitive
  EXPECT_EQ(r.match("GET", "/api/auth/logi").kind, R::Match::not_found);
  EXPECT_EQ(r.match("GET", "/api/auth/login/x").kind, R::Match::not_found);
  R empty;
  EXPECT_EQ(empty.match("GET", "/").kind, R::Match::not_found);
}

TEST(Router, MethodNotAllowedListsAllowedMethods) {
  auto r = make_router();
  auto m = r.match("GET", "/api/auth/login");
  ASSERT_EQ(m.kind, R::Match::method_not_allowed);
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_EQ(m.allow, "POST");
  EXPECT_EQ(m.pattern, "/api/auth/login");

  // A GET route also allows HEAD.
  auto del = r.match("DELETE", "/api/auth/check-auth");
  ASSERT_EQ(del.kind, R::Match::method_not_allowed);
  EXPECT_EQ(del.allow, "GET, HEAD");
}

TEST(Router, MethodNotAllowedCombinesSeveralRoutes) {
  R r;
  r.add("GET", "/items/:id", "get");
  r.add("DELETE", "/items/:id", "delete");
  r.add("PUT", "/items/special", "put-special");
  r.add("GET", "/items/:other", "shadowed");
  auto m = r.match("POST", "/items/special");
  ASSERT_EQ(m.kind, R::Match::method_not_allowed);
  EXPECT_EQ(m.allow, "GET, DELETE, PUT, HEAD");  // each method once
  EXPECT_EQ(m.pattern, "/items/:id");            // the first route that matched the path

  auto put = r.match("PUT", "/items/special");
  ASSERT_EQ(put.kind, R::Match::found);
  EXPECT_EQ(*put.handler, "put-special");
}

TEST(Router, HeadFallsBackToGet) {
  auto r = make_router();
  auto m = r.match("HEAD", "/api/messages/xyz");
  ASSERT_EQ(m.kind, R::Match::found);
  EXPECT_EQ(*m.handler, "history");
  EXPECT_EQ(param(m.params, "id"), "xyz");
  EXPECT_EQ(m.pattern, "/api/messages/:id");

  // HEAD on a POST-only route: 405, and HEAD is not offered.
  auto post_only = r.match("HEAD", "/api/auth/login");
  ASSERT_EQ(post_only.kind, R::Match::method_not_allowed);
  EXPECT_EQ(post_only.allow, "POST");

  // An explicit HEAD route wins over the GET fallback.
  R explicit_head;
  explicit_head.add("GET", "/x", "get");
  explicit_head.add("HEAD", "/x", "head");
  auto h = explicit_head.match("HEAD", "/x");
  ASSERT_EQ(h.kind, R::Match::found);
  EXPECT_EQ(*h.handler, "head");
  auto o = explicit_head.match("OPTIONS", "/x");
  ASSERT_EQ(o.kind, R::Match::method_not_allowed);
  EXPECT_EQ(o.allow, "GET, HEAD");
}

TEST(Router, OnlyHeadFallsBack) {
  auto r = make_router();
  // GET does not fall back to anything, and methods are case-sensitive (callers upper-case).
  EXPECT_EQ(r.match("get", "/api/auth/check-auth").kind, R::Match::method_not_allowed);
  EXPECT_EQ(r.match("POST", "/api/auth/check-auth").kind, R::Match::method_not_allowed);
}

// Like Express's default (non-strict) routing, a trailing slash is ignored. Empty segments are
// ignored too, so repeated slashes match the same route.
TEST(Router, TrailingAndRepeatedSlashes) {
  auto r = make_router();
  auto trailing = r.match("POST", "/api/auth/login/");
  ASSERT_EQ(trailing.kind, R::Match::found);
  EXPECT_EQ(*trailing.handler, "login");

  auto doubled = r.match("POST", "//api//auth///login");
  ASSERT_EQ(doubled.kind, R::Match::found);
  EXPECT_EQ(*doubled.handler, "login");

  auto param_trailing = r.match("GET", "/api/messages/abc/");
  ASSERT_EQ(param_trailing.kind, R::Match::found);
  EXPECT_EQ(param(param_trailing.params, "id"), "abc");

  // An empty segment is never captured as a parameter value.
  EXPECT_EQ(r.match("GET", "/api/messages//").kind, R::Match::not_found);

  auto root = r.match("GET", "");
  ASSERT_EQ(root.kind, R::Match::found);
  EXPECT_EQ(*root.handler, "root");
  EXPECT_EQ(r.match("GET", "///").kind, R::Match::found);
}

TEST(Router, OddPathsDoNotCrash) {
  auto r = make_router();
  const std::vector<std::string> paths{"",
                                       "/",
                                       "//",
                                       "/:id",
                                       "/api/messages/:id",
                                       std::string(10'000, '/'),
                                       std::string("/api/\0/x", 8),
                                       "/api/messages/%2F",
                                       "no-leading-slash"};
  for (const auto& p : paths)
    (void)r.match("GET", p);
  auto colon = r.match("GET", "/api/messages/:id");
  ASSERT_EQ(colon.kind, R::Match::found);
  EXPECT_EQ(param(colon.params, "id"), ":id");
}

}  // namespace
}  // namespace chat::net
