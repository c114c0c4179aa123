"""One document updated and read back, in time that does not grow with its collection.

SecantusDB, the embedded default, spends time on a findAndModify in proportion to the
collection it runs on, whatever index finds the document: 1.3 ms a call among 200 documents,
14 ms among 3000, 47 ms among 10,000 (docs/PERFORMANCE.md); a message collection of 100,000
would make every reaction cost half a second. An update and a read by `_id` take constant
time on it, as on MongoDB. The read may show a later change by another request as well: what
callers do with it (broadcast it, answer it) is the newest state, which clients converge on.
"""

from bson import ObjectId
from mongoengine import Document
from pymongo.collection import Collection


def update_one_by_id(document: type[Document], doc_id: ObjectId, where: dict, **update) -> Document | None:
    """`document.objects(id=doc_id, **where).modify(new=True, **update)`: the document after the update, or None
    when it is not there or `where` (guards, as query keywords) does not hold."""
    if not document.objects(id=doc_id, **where).update_one(**update):
        return None
    return document.objects(id=doc_id).first()


def update_raw_by_id(collection: Collection, query: dict, update: dict) -> dict | None:
    """The same with the driver: `query` names the document by `_id`; the raw document after the update, or None."""
    if not collection.update_one(query, update).matched_count:
        return None
    return collection.find_one({"_id": query["_id"]})
