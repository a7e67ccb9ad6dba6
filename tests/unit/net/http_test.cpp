#include "net/http.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace chat::net {
namespace {

Request with_query(std::string q) {
  Request r;
  r.method = "GET";
  r.path = "/api/messages/x";
  r.query = std::move(q);
  r.target = r.path + "?" + r.query;
  return r;
}

Request with_cookies(std::vector<std::string> cookie_headers) {
  Request r;
  r.method = "GET";
  r.path = "/";
  r.target = "/";
  for (auto& c : cookie_headers) r.headers.emplace_back("cookie", std::move(c));
  return r;
}

// ---- percent_decode ----

TEST(PercentDecode, Valid) {
  EXPECT_EQ(percent_decode(""), "");
  EXPECT_EQ(percent_decode("plain"), "plain");
  EXPECT_EQ(percent_decode("a%20b"), "a b");
  EXPECT_EQ(percent_decode("%41%42%43"), "ABC");
  EXPECT_EQ(percent_decode("%e2%82%ac"), "\xe2\x82\xac");  // lower-case hex: €
  EXPECT_EQ(percent_decode("%E2%82%AC"), "\xe2\x82\xac");
  EXPECT_EQ(percent_decode("%2F%3F%26%3D%25"), "/?&=%");
  EXPECT_EQ(percent_decode("%00"), std::string(1, '\0'));
  EXPECT_EQ(percent_decode("x%41"), "xA");  // an escape right at the end
}

TEST(PercentDecode, PlusIsOnlyASpaceWhenAsked) {
  EXPECT_EQ(percent_decode("a+b"), "a+b");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("a%2Bb", true), "a+b");
}

TEST(PercentDecode, MalformedEscapes) {
  for (const char* bad : {"%", "%4", "%zz", "%g1", "%1g", "abc%", "abc%4", "%%", "%-1", "% 1"})
    EXPECT_EQ(percent_decode(bad), std::nullopt) << '"' << bad << '"';
}

// ---- Request::query_param ----

TEST(QueryParam, DecodesValues) {
  auto r = with_query("before=65f1a2b3c4d5e6f708192a3b&limit=50&q=hello%20world&plus=a+b");
  EXPECT_EQ(r.query_param("before"), "65f1a2b3c4d5e6f708192a3b");
  EXPECT_EQ(r.query_param("limit"), "50");
  EXPECT_EQ(r.query_param("q"), "hello world");
  EXPECT_EQ(r.query_param("plus"), "a b");  // form encoding: '+' is a space
}

TEST(QueryParam, MissingEmptyAndBare) {
  auto r = with_query("empty=&bare&x=1");
  EXPECT_EQ(r.query_param("missing"), std::nullopt);
  EXPECT_EQ(r.query_param("empty"), "");
  EXPECT_EQ(r.query_param("bare"), "");
  EXPECT_EQ(r.query_param("x"), "1");
  EXPECT_EQ(r.query_param(""), std::nullopt);
  EXPECT_EQ(with_query("").query_param("x"), std::nullopt);
}

TEST(QueryParam, RepeatedKeysGiveTheFirst) {
  auto r = with_query("id=1&id=2&id=3");
  EXPECT_EQ(r.query_param("id"), "1");
}

TEST(QueryParam, KeysAreDecodedAndExact) {
  auto r = with_query("my%20key=v&my+other=w&limitx=9&Limit=8&limit=7");
  EXPECT_EQ(r.query_param("my key"), "v");
  EXPECT_EQ(r.query_param("my other"), "w");
  EXPECT_EQ(r.query_param("limit"), "7");  // no prefix or case-insensitive match
}

TEST(QueryParam, EmptyPairsAreSkipped) {
  auto r = with_query("&&a=1&&b=2&");
  EXPECT_EQ(r.query_param("a"), "1");
  EXPECT_EQ(r.query_param("b"), "2");
}

TEST(QueryParam, MalformedValueIsAbsent) {
  auto r = with_query("a=%zz&b=ok&c=100%");
  EXPECT_EQ(r.query_param("a"), std::nullopt);
  EXPECT_EQ(r.query_param("b"), "ok");
  EXPECT_EQ(r.query_param("c"), std::nullopt);
}

// ---- Request::cookie ----

TEST(Cookie, SeveralCookiesWithSpaces) {
  auto r = with_cookies({"a=1; jwt=eyJ.abc.def;theme=dark ;  spaced  =  value  "});
  EXPECT_EQ(r.cookie("a"), "1");
  EXPECT_EQ(r.cookie("jwt"), "eyJ.abc.def");
  EXPECT_EQ(r.cookie("theme"), "dark");
  EXPECT_EQ(r.cookie("spaced"), "value");
}

TEST(Cookie, QuotedAndPercentEncodedValues) {
  auto r = with_cookies({"q=\"quoted value\"; enc=a%20b%3Bc; plus=a+b; bad=100%; eq=a=b"});
  EXPECT_EQ(r.cookie("q"), "quoted value");
  EXPECT_EQ(r.cookie("enc"), "a b;c");
  EXPECT_EQ(r.cookie("plus"), "a+b");  // cookies are not form-encoded
  EXPECT_EQ(r.cookie("bad"), "100%");  // like the `cookie` package: kept as is when undecodable
  EXPECT_EQ(r.cookie("eq"), "a=b");
}

TEST(Cookie, Absent) {
  auto r = with_cookies({"a=1; b=2"});
  EXPECT_EQ(r.cookie("c"), std::nullopt);
  EXPECT_EQ(r.cookie("A"), std::nullopt);  // names are case-sensitive
  EXPECT_EQ(r.cookie(""), std::nullopt);
  EXPECT_EQ(with_cookies({}).cookie("a"), std::nullopt);
  EXPECT_EQ(with_cookies({""}).cookie("a"), std::nullopt);
  EXPECT_EQ(with_cookies({"novalue; ;;"}).cookie("novalue"), std::nullopt);
}

TEST(Cookie, PrefixOfAnotherNameDoesNotMatch) {
  auto r = with_cookies({"jwt_old=1; xjwt=2"});
  EXPECT_EQ(r.cookie("jwt"), std::nullopt);
}

TEST(Cookie, FirstOccurrenceAcrossHeaders) {
  auto r = with_cookies({"a=1", "b=2; a=3"});
  EXPECT_EQ(r.cookie("a"), "1");
  EXPECT_EQ(r.cookie("b"), "2");
}

TEST(Cookie, EmptyValue) {
  auto r = with_cookies({"jwt=; x=1"});
  EXPECT_EQ(r.cookie("jwt"), "");
  EXPECT_EQ(with_cookies({"q=\"\""}).cookie("q"), "");
}

TEST(Cookie, OnlyTheCookieHeaderIsRead) {
  Request r;
  r.headers.emplace_back("set-cookie", "a=1");
  r.headers.emplace_back("x-cookie", "a=2");
  EXPECT_EQ(r.cookie("a"), std::nullopt);
}

// ---- Request::header ----

TEST(RequestHeader, FirstByLowerCaseName) {
  Request r;
  r.headers = {{"x-forwarded-for", "1.1.1.1"}, {"x-forwarded-for", "2.2.2.2"}, {"host", "h"}};
  EXPECT_EQ(r.header("x-forwarded-for"), "1.1.1.1");
  EXPECT_EQ(r.header("host"), "h");
  EXPECT_EQ(r.header("missing"), "");
}

// ---- Response ----

TEST(Response, SetReplacesCaseInsensitively) {
  Response r;
  r.set("Content-Type", "text/plain");
  r.set("content-type", "application/json");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].second, "application/json");
  EXPECT_EQ(r.header("CONTENT-TYPE"), "application/json");
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(r.header("missing"), "");
}

TEST(Response, AddKeepsRepeats) {
  Response r;
  r.add("Set-Cookie", "a=1").add("set-cookie", "b=2");
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[0].second, "a=1");
  EXPECT_EQ(r.headers[1].second, "b=2");
  EXPECT_EQ(r.header("SET-COOKIE"), "a=1");  // header() gives the first
  // set() replaces the first of the repeats and leaves the rest.
  r.set("Set-Cookie", "c=3");
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[0].second, "c=3");
  EXPECT_EQ(r.headers[1].second, "b=2");
}

TEST(Response, JsonAndTextFactories) {
  auto j = Response::json(201, R"({"ok":true})");
  EXPECT_EQ(j.status, 201);
  EXPECT_EQ(j.body, R"({"ok":true})");
  EXPECT_EQ(j.header("content-type"), "application/json; charset=utf-8");
  EXPECT_FALSE(j.close);

  auto t = Response::text(404, "nope", "text/plain; charset=utf-8");
  EXPECT_EQ(t.status, 404);
  EXPECT_EQ(t.body, "nope");
  EXPECT_EQ(t.header("Content-Type"), "text/plain; charset=utf-8");
  // set() on the factory's header replaces it.
  t.set("content-type", "text/html");
  EXPECT_EQ(t.header("Content-Type"), "text/html");
  EXPECT_EQ(t.headers.size(), 1u);
}

// ---- Responder ----

struct Sink {
  std::vector<Response> got;
  Responder::Fn fn() {
    return [this](Response r) { got.push_back(std::move(r)); };
  }
};

TEST(Responder, DeliversOnce) {
  Sink sink;
  {
    Responder respond(sink.fn());
    EXPECT_TRUE(static_cast<bool>(respond));
    respond(Response::json(200, "{}"));
    ASSERT_EQ(sink.got.size(), 1u);
    EXPECT_EQ(sink.got[0].status, 200);
    EXPECT_EQ(sink.got[0].body, "{}");
  }
  // Destroying it after the call sends nothing more.
  EXPECT_EQ(sink.got.size(), 1u);
}

TEST(Responder, CopiesShareOneCompletion) {
  Sink sink;
  {
    Responder a(sink.fn());
    Responder b = a;
    Responder c = b;
    b(Response::json(201, "first"));
    a(Response::json(202, "second"));  // ignored
    c(Response::json(203, "third"));   // ignored
  }
  ASSERT_EQ(sink.got.size(), 1u);
  EXPECT_EQ(sink.got[0].status, 201);
  EXPECT_EQ(sink.got[0].body, "first");
}

TEST(Responder, DroppingEveryCopyWithoutACallSends500) {
  Sink sink;
  {
    Responder a(sink.fn());
    Responder b = a;
    { Responder c = b; }
    EXPECT_TRUE(sink.got.empty()) << "a copy is still alive";
    a = Responder();
    EXPECT_TRUE(sink.got.empty()) << "b is still alive";
  }
  ASSERT_EQ(sink.got.size(), 1u);
  EXPECT_EQ(sink.got[0].status, 500);
  EXPECT_EQ(sink.got[0].header("content-type"), "application/json; charset=utf-8");
  EXPECT_NE(sink.got[0].body.find("\"success\":false"), std::string::npos);
}

TEST(Responder, EmptyResponderIsHarmless) {
  Responder none;
  EXPECT_FALSE(static_cast<bool>(none));
  none(Response::json(200, "{}"));  // logged and ignored, no crash
}

TEST(Responder, WrapSeesAndModifiesTheResponse) {
  Sink sink;
  int seen_status = 0;
  {
    Responder inner(sink.fn());
    Responder outer = inner.wrap([&](Response& r) {
      seen_status = r.status;
      r.set("Access-Control-Allow-Origin", "http://localhost:5173");
      r.status = 299;
    });
    inner = Responder();  // the wrapper keeps the inner completion alive
    EXPECT_TRUE(sink.got.empty());
    outer(Response::json(200, "body"));
  }
  EXPECT_EQ(seen_status, 200);
  ASSERT_EQ(sink.got.size(), 1u);
  EXPECT_EQ(sink.got[0].status, 299);
  EXPECT_EQ(sink.got[0].body, "body");
  EXPECT_EQ(sink.got[0].header("access-control-allow-origin"), "http://localhost:5173");
}

TEST(Responder, WrapAppliesToTheAutomatic500) {
  Sink sink;
  int wrapped = 0;
  {
    Responder inner(sink.fn());
    Responder outer = inner.wrap([&](Response& r) {
      ++wrapped;
      r.set("X-Request-Id", "abc");
    });
    inner = Responder();
  }
  EXPECT_EQ(wrapped, 1);
  ASSERT_EQ(sink.got.size(), 1u);
  EXPECT_EQ(sink.got[0].status, 500);
  EXPECT_EQ(sink.got[0].header("x-request-id"), "abc");
}

TEST(Responder, ConcurrentCallsDeliverExactlyOnce) {
  std::atomic<int> delivered{0};
  for (int round = 0; round < 200; ++round) {
    Responder r([&](Response) { ++delivered; });
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([r, t] { r(Response::json(200 + t, "{}")); });
    for (auto& th : threads) th.join();
  }
  EXPECT_EQ(delivered.load(), 200);
}

}  // namespace
}  // namespace chat::net
