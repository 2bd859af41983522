"""The search page's form: what a clerk may type, turned into ``search_patients`` arguments.

Values are read by the search backend (``search.parsing``), which raises a
ValidationError keyed by field name for what it cannot read ("31/31/1980"); the view
puts those on this form, so there is one parser and one set of messages.
"""

from django import forms

from patients.codes import Gender

PAGE_SIZE = 20
# Structured fields, shown under "More fields".
MORE_FIELDS = ("family", "given", "birth_date", "gender", "identifier", "phone", "email", "postcode")


class SearchForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        help_text="A name, birth date, identifier, phone, email or postcode, in any order: "
        "“jon smyth 1980-03-04”, “MRN 77”, “617 555 0100”.",
        widget=forms.TextInput(attrs={"type": "search", "autofocus": True, "autocomplete": "off"}),
    )
    family = forms.CharField(label="Family name", required=False, max_length=200)
    given = forms.CharField(label="Given name", required=False, max_length=200)
    birth_date = forms.CharField(
        label="Birth date",
        required=False,
        max_length=40,
        help_text="1980-03-04 or 04/03/1980",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    gender = forms.ChoiceField(label="Gender", required=False, choices=[("", "Any"), *Gender.choices])
    identifier = forms.CharField(
        label="Identifier", required=False, max_length=300, help_text="A value, or system|value"
    )
    phone = forms.CharField(
        label="Phone", required=False, max_length=40, widget=forms.TextInput(attrs={"type": "tel"})
    )
    email = forms.CharField(
        label="Email", required=False, max_length=254, widget=forms.TextInput(attrs={"type": "email"})
    )
    postcode = forms.CharField(label="Postcode", required=False, max_length=20)
    # Only the pagination links carry it, so a changed query starts at the first page.
    offset = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def has_criteria(self) -> bool:
        """Whether anything was typed to search for (a gender alone narrows, never finds)."""
        data = self.cleaned_data
        return any(data.get(name) for name in ("q", *MORE_FIELDS) if name != "gender")

    def more_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in MORE_FIELDS]

    def uses_more_fields(self) -> bool:
        """Open "More fields" when one of them holds a value (also without JavaScript)."""
        return any(self.data.get(name) for name in MORE_FIELDS)

    def search_kwargs(self) -> dict:
        data = self.cleaned_data
        family, given = data["family"].strip(), data["given"].strip()
        # search_patients takes one name; "family, given" tells it which words are the
        # family name (they rank higher), and "Smith," is a family name alone.
        name = f"{family}, {given}" if family else given
        return {
            "text": data["q"],
            "name": name,
            "birth_date": data["birth_date"],
            "gender": data["gender"],
            "identifier": data["identifier"],
            "phone": data["phone"],
            "email": data["email"],
            "postcode": data["postcode"],
            "limit": PAGE_SIZE,
            "offset": data["offset"] or 0,
        }
