// mongo_check.mjs URI: the MongoDB operations chatd's mongo_store and chat-worker rely on, against
// FerretDB (or MongoDB) through the official Node driver. Core operations must work (exit 1
// otherwise); optional ones (transactions, $lookup, change streams) are only reported, because
// FerretDB 1.x lacks some of them and the store must not depend on them.
import { MongoClient, ObjectId } from 'mongodb';

const uri = process.argv[2];
const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
const results = [];
let failed = 0;

async function check(name, core, fn) {
  try {
    const detail = await fn();
    results.push(`ok        ${name}${detail ? `: ${detail}` : ''}`);
  } catch (e) {
    if (core) failed++;
    results.push(`${core ? 'FAIL     ' : 'missing  '} ${name}: ${e.codeName ?? ''} ${e.message}`.trim());
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

await client.connect();
const db = client.db(`selftest_${Date.now()}`);
const users = db.collection('users');
const messages = db.collection('messages');
const hello = await db.admin().command({ hello: 1 });
const build = await db.admin().command({ buildInfo: 1 });
results.push(`server    version ${build.version}${build.ferretdbVersion ? ` (FerretDB ${build.ferretdbVersion})` : ''}, maxWireVersion ${hello.maxWireVersion}`);

const alice = new ObjectId();
const bob = new ObjectId();
const now = new Date();

await check('insertOne + findOne by _id (ObjectId, Date)', true, async () => {
  await users.insertOne({ _id: alice, email: 'alice@example.com', full_name: 'Alice', password: '$2a$10$abcdefghijklmnopqrstuv', createdAt: now, updatedAt: now });
  const u = await users.findOne({ _id: alice });
  assert(u && u.email === 'alice@example.com' && u.createdAt.getTime() === now.getTime(), 'round trip differs');
});

await check('unique index on users.email, duplicate -> E11000', true, async () => {
  await users.createIndex({ email: 1 }, { unique: true });
  await users.insertOne({ _id: bob, email: 'bob@example.com', full_name: 'Bob', createdAt: now, updatedAt: now });
  try {
    await users.insertOne({ email: 'alice@example.com', full_name: 'Alice 2' });
  } catch (e) {
    assert(e.code === 11000, `code ${e.code}`);
    return 'code 11000';
  }
  throw new Error('duplicate email accepted');
});

await check('compound index on messages', true, async () => {
  await messages.createIndex({ senderId: 1, receiverId: 1, createdAt: -1 });
  await messages.createIndex({ receiverId: 1, createdAt: -1 });
  const idx = await messages.indexes();
  return `${idx.length} indexes`;
});

const ids = Array.from({ length: 5 }, () => new ObjectId());
const docs = ids.map((id, i) => ({
  _id: id, senderId: i % 2 ? alice : bob, receiverId: i % 2 ? bob : alice, text: `m${i}`,
  createdAt: new Date(now.getTime() + i), updatedAt: new Date(now.getTime() + i),
}));

await check('unordered bulkWrite of upserts by _id ($setOnInsert), replayed = idempotent', true, async () => {
  const ops = docs.map((d) => ({ updateOne: { filter: { _id: d._id }, update: { $setOnInsert: d }, upsert: true } }));
  const r1 = await messages.bulkWrite(ops, { ordered: false });
  const r2 = await messages.bulkWrite(ops, { ordered: false });
  const n = await messages.countDocuments({});
  assert(r1.upsertedCount === 5 && r2.upsertedCount === 0 && n === 5, `upserted ${r1.upsertedCount}/${r2.upsertedCount}, count ${n}`);
  return `upserted ${r1.upsertedCount} then ${r2.upsertedCount}, count ${n}`;
});

await check('unordered insertMany with a duplicate _id -> the rest inserted, E11000 reported', true, async () => {
  const extra = { _id: new ObjectId(), senderId: alice, receiverId: bob, text: 'x', createdAt: now, updatedAt: now };
  try {
    await messages.insertMany([docs[0], extra], { ordered: false });
  } catch (e) {
    const codes = (e.writeErrors ?? []).map((w) => w.code ?? w.err?.code);
    assert(codes.includes(11000), `codes ${codes}`);
    assert(await messages.findOne({ _id: extra._id }), 'the non-duplicate was not inserted');
    await messages.deleteOne({ _id: extra._id });
    return 'ok';
  }
  throw new Error('duplicate _id accepted');
});

await check('conversation history: $or + sort createdAt + limit', true, async () => {
  const got = await messages.find({ $or: [{ senderId: alice, receiverId: bob }, { senderId: bob, receiverId: alice }] })
    .sort({ createdAt: -1 }).limit(3).toArray();
  assert(got.map((m) => m.text).join() === 'm4,m3,m2', got.map((m) => m.text).join());
});

await check('updateOne $set + findOneAndUpdate returnDocument after', true, async () => {
  await users.updateOne({ _id: alice }, { $set: { bio: 'hi', updatedAt: new Date() } });
  const u = await users.findOneAndUpdate({ _id: bob }, { $set: { bio: 'yo' } }, { returnDocument: 'after' });
  assert(u && u.bio === 'yo', JSON.stringify(u));
});

await check('aggregate with an expression operator ($cond in $group) (optional)', false, async () => {
  const r = await messages.aggregate([
    { $match: { $or: [{ senderId: alice }, { receiverId: alice }] } },
    { $sort: { createdAt: -1 } },
    { $group: { _id: { $cond: [{ $eq: ['$senderId', alice] }, '$receiverId', '$senderId'] }, last: { $first: '$text' } } },
  ]).toArray();
  assert(r.length === 1 && r[0].last === 'm4', JSON.stringify(r));
});

await check('range + $in filters, countDocuments (unread counts, paging before a date)', true, async () => {
  const unread = await messages.countDocuments({ receiverId: alice, createdAt: { $gt: docs[0].createdAt } });
  const before = await messages.find({ _id: { $in: ids }, createdAt: { $lt: docs[2].createdAt } }).sort({ createdAt: 1 }).toArray();
  assert(unread === 2 && before.map((m) => m.text).join() === 'm0,m1', `unread ${unread}, before ${before.map((m) => m.text)}`);
});

await check('aggregate $group by a field + $sum', true, async () => {
  const r = await messages.aggregate([{ $group: { _id: '$senderId', n: { $sum: 1 } } }, { $sort: { n: -1 } }]).toArray();
  assert(r.length === 2 && r[0].n === 3, JSON.stringify(r));
});

await check('aggregate $lookup (optional)', false, async () => {
  const r = await messages.aggregate([{ $lookup: { from: 'users', localField: 'senderId', foreignField: '_id', as: 'sender' } }, { $limit: 1 }]).toArray();
  assert(r[0].sender.length === 1, 'no join');
});

await check('multi-document transaction (optional)', false, async () => {
  const s = client.startSession();
  try {
    await s.withTransaction(async () => { await users.updateOne({ _id: alice }, { $set: { bio: 'tx' } }, { session: s }); });
  } finally {
    await s.endSession();
  }
});

await check('change stream (optional)', false, async () => {
  const cs = messages.watch();
  await cs.tryNext();
  await cs.close();
});

await check('dropDatabase', true, async () => { await db.dropDatabase(); });
await client.close();
console.log(results.join('\n'));
console.log(failed ? `mongo_check: ${failed} core operation(s) failed` : 'mongo_check: all core operations ok');
process.exit(failed ? 1 : 0);
