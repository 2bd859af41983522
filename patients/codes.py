"""FHIR R4 code systems used by the patient model, as TextChoices.

Each class names the FHIR value set it implements; only these codes are accepted from
any interface (fhir.resources itself would accept ``gender: "M"``).
"""

from django.db import models


class Gender(models.TextChoices):
    """http://hl7.org/fhir/R4/valueset-administrative-gender.html"""

    MALE = "male", "Male"
    FEMALE = "female", "Female"
    OTHER = "other", "Other"
    UNKNOWN = "unknown", "Unknown"


class MaritalStatus(models.TextChoices):
    """http://hl7.org/fhir/R4/valueset-marital-status.html (v3-MaritalStatus + UNK)"""

    ANNULLED = "A", "Annulled"
    DIVORCED = "D", "Divorced"
    INTERLOCUTORY = "I", "Interlocutory"
    LEGALLY_SEPARATED = "L", "Legally Separated"
    MARRIED = "M", "Married"
    POLYGAMOUS = "P", "Polygamous"
    NEVER_MARRIED = "S", "Never Married"
    DOMESTIC_PARTNER = "T", "Domestic partner"
    UNMARRIED = "U", "Unmarried"
    WIDOWED = "W", "Widowed"
    UNKNOWN = "UNK", "Unknown"


class NameUse(models.TextChoices):
    """http://hl7.org/fhir/R4/valueset-name-use.html"""

    USUAL = "usual", "Usual"
    OFFICIAL = "official", "Official"
    TEMP = "temp", "Temp"
    NICKNAME = "nickname", "Nickname"
    ANONYMOUS = "anonymous", "Anonymous"
    OLD = "old", "Old"
    MAIDEN = "maiden", "Maiden"


class IdentifierUse(models.TextChoices):
    """http://hl7.org/fhir/R4/valueset-identifier-use.html"""

    USUAL = "usual", "Usual"
    OFFICIAL = "official", "Official"
    TEMP = "temp", "Temp"
    SECONDARY = "secondary", "Secondary"
    OLD = "old", "Old"


class IdentifierType(models.TextChoices):
    """Codes of http://terminology.hl7.org/CodeSystem/v2-0203 that patients carry."""

    MR = "MR", "Medical record number"
    SS = "SS", "Social Security number"
    NI = "NI", "National unique individual identifier"
    NH = "NH", "National Health Plan identifier"
    JHN = "JHN", "Jurisdictional health number"
    DL = "DL", "Driver's license number"
    PPN = "PPN", "Passport number"
    TAX = "TAX", "Tax ID number"
    NPI = "NPI", "National provider identifier"
    PRN = "PRN", "Provider number"
    MCN = "MCN", "Microchip number"
    MB = "MB", "Member number"
    PI = "PI", "Patient internal identifier"
    PT = "PT", "Patient external identifier"
    BRN = "BRN", "Breed registry number"
    EN = "EN", "Employer number"
    AN = "AN", "Account number"


class AddressUse(models.TextChoices):
    """http://hl7.org/fhir/R4/valueset-address-use.html"""

    HOME = "home", "Home"
    WORK = "work", "Work"
    TEMP = "temp", "Temporary"
    OLD = "old", "Old / Incorrect"
    BILLING = "billing", "Billing"


class AddressType(models.TextChoices):
    """http://hl7.org/fhir/R4/valueset-address-type.html"""

    POSTAL = "postal", "Postal"
    PHYSICAL = "physical", "Physical"
    BOTH = "both", "Postal & Physical"


class ContactSystem(models.TextChoices):
    """http://hl7.org/fhir/R4/valueset-contact-point-system.html"""

    PHONE = "phone", "Phone"
    FAX = "fax", "Fax"
    EMAIL = "email", "Email"
    PAGER = "pager", "Pager"
    URL = "url", "URL"
    SMS = "sms", "SMS"
    OTHER = "other", "Other"


class ContactUse(models.TextChoices):
    """http://hl7.org/fhir/R4/valueset-contact-point-use.html"""

    HOME = "home", "Home"
    WORK = "work", "Work"
    TEMP = "temp", "Temp"
    OLD = "old", "Old"
    MOBILE = "mobile", "Mobile"


class LinkType(models.TextChoices):
    """http://hl7.org/fhir/R4/valueset-link-type.html"""

    REPLACED_BY = "replaced-by", "Replaced by"
    REPLACES = "replaces", "Replaces"
    REFER = "refer", "Refer"
    SEEALSO = "seealso", "See also"


# Systems whose numbers are written as phone numbers (normalised to E.164).
PHONE_SYSTEMS = frozenset({ContactSystem.PHONE, ContactSystem.FAX, ContactSystem.SMS, ContactSystem.PAGER})
# Link types only the merge service may write.
MERGE_LINK_TYPES = frozenset({LinkType.REPLACED_BY, LinkType.REPLACES})
