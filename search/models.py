"""The search index: one denormalised row per live patient, owned by ``search``.

Rows are written only by ``search.indexing`` (the ``patient_changed`` receiver, the
rebuild command and the benchmark's bulk loader), all from the one pure function
``index_values``. Soft-deleted patients have no row; merged-away patients keep one
flagged ``merged`` so an explicit identifier lookup still finds them while search
and candidate retrieval skip them.
"""

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models

from patients.models import Patient

# Every GIN index keeps its pending list (new entries not yet merged into the index
# proper, which every lookup scans in full) under this many kB instead of PostgreSQL's
# 4 MB: registrations arrive one by one, and autovacuum merges the lists only after
# inserts of a fifth of the table. At a million patients, a thousand registrations'
# pending entries made candidate retrieval ~5x slower (~16 ms instead of ~3 ms a probe:
# docs/bench.md). The inserting backend merges a full list; imports merge after each
# batch (``search.indexing.merge_gin_pending_lists``).
GIN_PENDING_LIST_KB = 64


def _gin(field: str, *, name: str, **options) -> GinIndex:
    return GinIndex(fields=[field], name=name, gin_pending_list_limit=GIN_PENDING_LIST_KB, **options)


def _texts():
    return ArrayField(models.TextField(), default=list, blank=True)


class PatientIndex(models.Model):
    patient = models.OneToOneField(
        Patient, primary_key=True, on_delete=models.CASCADE, related_name="search_index"
    )
    # Set by merge: inactive with a replaced-by link. Hidden from search and blocking.
    merged = models.BooleanField(default=False)
    display_name = models.TextField(blank=True, help_text="The primary name, as written.")
    # Folded (unaccented, lower-case) words of all the patient's names, each once.
    name_text = models.TextField(blank=True)
    family_names = _texts()
    given_names = _texts()
    # "m:SM0", "n:SNAT", "s:S530": metaphone / NYSIIS / soundex of every name word,
    # and "y:1980", the birth year, so a sound and a year meet in one GIN lookup.
    phonetic_keys = _texts()
    # Composite keys for candidate retrieval, see search/keys.py.
    block_keys = _texts()
    birth_date = models.DateField(null=True, blank=True)
    birth_year = models.SmallIntegerField(null=True, blank=True)
    gender = models.CharField(max_length=16, blank=True)
    postcodes = _texts()
    cities = _texts()
    phones = _texts()  # E.164
    phone_suffixes = _texts()  # last 7 digits
    emails = _texts()
    identifier_keys = _texts()  # "system|value"
    identifier_values = _texts()  # lower-cased values, for "MRN 123456" without a system
    # Sources of the weighted tsvector: names and keywords weigh A, the address C.
    # Keywords are whole-word keys: the identifier values and a birth-year token
    # ("y1980"), so a name and a birth year meet in one tsvector lookup.
    keyword_text = models.TextField(blank=True)
    address_text = models.TextField(blank=True)
    # What the matcher compares (patients.data.data_to_json): scoring a probe's
    # candidates reads these rows, which the candidate query has just visited, instead
    # of five child tables per candidate. Null only for rows written before it existed
    # (``rebuild_search_index`` fills them; the matcher reads those patients' tables).
    match_data = models.JSONField(null=True, blank=True)
    search_vector = models.GeneratedField(
        expression=SearchVector("name_text", weight="A", config="simple")
        + SearchVector("keyword_text", weight="A", config="simple")
        + SearchVector("address_text", weight="C", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        verbose_name = "patient search index row"
        indexes = [
            _gin("name_text", name="search_name_trgm", opclasses=["gin_trgm_ops"]),
            _gin("search_vector", name="search_vector_gin"),
            _gin("phonetic_keys", name="search_phonetic_gin"),
            _gin("block_keys", name="search_block_keys_gin"),
            _gin("identifier_keys", name="search_identifier_keys_gin"),
            _gin("identifier_values", name="search_identifier_values_gin"),
            _gin("phones", name="search_phones_gin"),
            _gin("phone_suffixes", name="search_phone_suffixes_gin"),
            _gin("emails", name="search_emails_gin"),
            _gin("postcodes", name="search_postcodes_gin"),
            # Covering, so the birth-date block of candidate retrieval scores its
            # rows by name similarity from the index alone (index-only scan).
            models.Index(
                fields=["birth_date"], include=["patient", "merged", "name_text"], name="search_birth_date"
            ),
        ]

    def __str__(self) -> str:
        return f"index row of patient {self.patient_id}"


class NameWord(models.Model):
    """Every folded word of every indexed name: the vocabulary a mistyped search word
    is matched against by trigram similarity ("brauntton" -> "braunton") before the
    index rows are searched by exact words. Trigram-searching these few tens of
    thousands of words is cheap; trigram-searching a million name texts is not.
    Words are only added (a word of a deleted patient just finds nothing)."""

    word = models.TextField(primary_key=True)

    class Meta:
        indexes = [_gin("word", name="search_nameword_trgm", opclasses=["gin_trgm_ops"])]

    def __str__(self) -> str:
        return self.word
