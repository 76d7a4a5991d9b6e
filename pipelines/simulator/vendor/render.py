"""Rendering drawn stories as the API's JSON records, as of a day."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pipelines.simulator.vendor.catalog import (
    ACTIVE,
    APP_SPECS,
    BILLING,
    CHANNELS,
    CITIES,
    CLOUD,
    CLOUD_EDITIONS,
    CLOUD_ENTITLEMENT_DAY,
    COMMERCIAL,
    COMPANIES,
    COUNTRIES,
    DC,
    DC_ENTITLEMENT_DAY,
    EPOCH,
    EVALUATION,
    F_ADVANCED,
    F_EDITIONED,
    F_NET30,
    F_SWITCH,
    FEEDBACK_TYPES,
    HOSTINGS,
    INSIGHTS_DAY,
    LICENSE_TYPES,
    MESSAGES,
    OPPORTUNITY_SIZES,
    PARTNERS,
    PEOPLE,
    REASONS,
    REFUND,
    REFUND_REASONS,
    SALE_TYPES,
    STATUSES,
    App,
    as_uuid,
    discount_cents,
    iso,
    mix64,
    tier_name,
)
from pipelines.simulator.vendor.stories import (
    EV_CONTACT,
    EV_CONVERT,
    EV_EDITION_BOUGHT,
    EV_EDITION_TRIAL,
    EV_ENTNUM,
    EV_EVAL,
    EV_PAID,
    EV_STATUS,
    EV_TIER_FLAP,
    EV_UPG_END,
    EV_UPG_EVAL,
    L_APP,
    L_ATTRIB,
    L_CUST,
    L_EVENTS,
    L_HOST,
    L_NO,
    L_PARTNER,
    L_RELATED,
    L_SALT,
    L_START,
    L_TXS,
    L_USERS,
    T_BILL,
    T_FLAGS,
    T_K,
    T_LINE,
    T_LIST,
    T_LTYPE,
    T_ME,
    T_MS,
    T_OLD,
    T_ORIG_K,
    T_ORIG_SALE,
    T_PRICE,
    T_REFUNDED,
    T_REWRITE,
    T_SALE,
    T_TYPE,
    T_USERS,
    T_VENDOR,
)


class Renderer:
    """Turns one vendor's story tuples into v2 license, transaction, feedback, attribution records.

    Attributes:
        seed: The vendor's seed, mixed into derived identifiers.
        apps: The vendor's apps, indexed by a story's app slot.
    """

    def __init__(self, seed: int, apps: list[App]) -> None:
        self.seed = seed
        self.apps = apps

    def ids(self, rec: tuple[Any, ...]) -> dict[str, str]:
        """Return the identifier fields a license and its transactions share (before 2025-09)."""
        no, hosting, salt, cust = rec[L_NO], rec[L_HOST], rec[L_SALT], rec[L_CUST]
        seedmix = mix64(self.seed)
        ids = {"addonLicenseId": str(10_000_000 + no * 7 + self.seed % 7)}
        if hosting == CLOUD:
            ids["licenseId"] = f"SEN-L{20_000_000 + no}"
            if rec[L_START] >= CLOUD_ENTITLEMENT_DAY:
                ids["appEntitlementId"] = as_uuid(mix64(no) ^ seedmix, salt)
                ids["appEntitlementNumber"] = f"E-{4_000_000 + no}"
                ids["hostEntitlementId"] = as_uuid(cust, seedmix)
            else:
                ids["hostLicenseId"] = f"SEN-{60_000_000 + no}"
            ids["cloudId"] = as_uuid(seedmix ^ cust, cust)
        else:
            ids["licenseId"] = f"SEN-{30_000_000 + no}"
            ids["hostLicenseId"] = f"SEN-{50_000_000 + no}"
        app = self.apps[rec[L_APP]]
        ids["addonKey"] = app.addon_key
        ids["addonName"] = app.name
        return ids

    def customer(self, rec: tuple[Any, ...], day: int) -> dict[str, Any]:
        """Return the transaction `customerDetails` (contact changes are license-only)."""
        cust = rec[L_CUST]
        country, region = COUNTRIES[cust % len(COUNTRIES)]
        rtbf = (cust >> 8) % 33 == 0
        name, handle = PEOPLE[(cust >> 16) % len(PEOPLE)]
        out: dict[str, Any] = {}
        if (cust >> 24) % 20:
            out["company"] = "RTBF" if rtbf else COMPANIES[(cust >> 12) % len(COMPANIES)]
        out["country"] = country
        out["region"] = region
        domain = f"example{(cust >> 32) % 997}.com"
        out["technicalContact"] = (
            {"email": "RTBF", "name": "RTBF"}
            if rtbf
            else {"email": f"{handle}@{domain}", "name": name}
        )
        if (cust >> 40) % 10 < 7:
            bname, bhandle = PEOPLE[(cust >> 44) % len(PEOPLE)]
            out["billingContact"] = {"email": f"{bhandle}.billing@{domain}", "name": bname}
        return out

    def license(self, rec: tuple[Any, ...], day: int, insights: bool) -> dict[str, Any]:
        ltype = COMMERCIAL
        ms = me = rec[L_START]
        status = ACTIVE
        last = rec[L_START]
        flap = contact = entnum = 0
        ins: tuple[int, int, int] | None = None
        in_eval = False
        saved_ms = ms
        trial, advanced = -1, False
        for d, code, a, b in rec[L_EVENTS]:
            if d > day:
                break
            last = d
            if code == EV_EVAL:
                ltype, ms, me, status, in_eval = EVALUATION, a, b, ACTIVE, True
            elif code == EV_PAID:
                ltype, ms, status = a, b, ACTIVE
            elif code == EV_STATUS:
                status = a
            elif code == EV_CONVERT:
                ltype, ms, status, in_eval, ins = COMMERCIAL, d, ACTIVE, False, (a, b, d)
            elif code == EV_UPG_EVAL:
                saved_ms = ms
                ltype, ms, me, in_eval = EVALUATION, a, b, True
            elif code == EV_UPG_END:
                ltype, ms, in_eval, ins = COMMERCIAL, saved_ms, False, (a, b, -1)
            elif code == EV_TIER_FLAP:
                flap = a
            elif code == EV_CONTACT:
                contact = a
            elif code == EV_ENTNUM:
                entnum = 1
            elif code == EV_EDITION_TRIAL:
                trial = a
            elif code == EV_EDITION_BOUGHT:
                advanced = True
        users = rec[L_USERS]
        for t in rec[L_TXS]:
            if t[T_SALE] > day:
                break
            if t[T_TYPE] != REFUND:
                users = t[T_USERS]
                if t[T_SALE] > last:
                    last = t[T_SALE]
                if not in_eval and t[T_ME] > t[T_MS]:
                    me = t[T_ME]
        hosting = rec[L_HOST]
        out: dict[str, Any] = self.ids(rec)
        if hosting == DC and (entnum or rec[L_START] >= DC_ENTITLEMENT_DAY):
            out["appEntitlementNumber"] = f"E-{4_000_000 + rec[L_NO]}"
        if hosting == CLOUD and "appEntitlementId" in out:
            out["cloudSiteHostname"] = (
                f"site{rec[L_CUST] % 100_000:05d}-{rec[L_NO] // 2}.atlassian.net"
            )
        out["hosting"] = HOSTINGS[hosting]
        if trial >= 0:
            out["appEdition"] = "Advanced" if advanced else "Standard"
            out["upgradeEvaluationStartDate"] = iso(trial)
            out["upgradeEvaluatingEdition"] = "Advanced"
        out["lastUpdated"] = iso(last)
        out["licenseType"] = LICENSE_TYPES[ltype]
        out["maintenanceStartDate"] = iso(ms)
        out["maintenanceEndDate"] = iso(me)
        out["status"] = STATUSES[status]
        out["tier"] = tier_name(-1 if flap else users)
        if rec[L_RELATED] >= 0:
            # A migration: the Cloud license names the Server / Data Center one it replaces.
            bought = any(t[T_SALE] <= day and t[T_PRICE] > 0 for t in rec[L_TXS])
            out["cmtDetails"] = {
                "status": "converted" if bought else "active",
                "relatedOnPremLicense": f"SEN-{30_000_000 + rec[L_RELATED]}",
            }
        contact_details = self.customer(rec, day)
        if contact:
            name, handle = PEOPLE[(rec[L_CUST] >> 50) % len(PEOPLE)]
            tc = contact_details["technicalContact"]
            if tc["name"] != "RTBF":
                tc["name"], tc["email"] = name, f"{handle}@example-new.com"
        if rec[L_CUST] % 3 == 0:
            contact_details["technicalContact"]["phone"] = f"+49 89 {rec[L_CUST] % 10_000_000:07d}"
            contact_details["technicalContact"]["city"] = CITIES[rec[L_CUST] % len(CITIES)]
        out["contactDetails"] = contact_details
        if rec[L_PARTNER] >= 0:
            pname, ptype = PARTNERS[rec[L_PARTNER]]
            out["partnerDetails"] = {"partnerName": pname, "partnerType": ptype}
        if hosting == CLOUD and rec[L_ATTRIB]:
            _, source, medium, campaign = _channel(rec[L_ATTRIB][0][2])[:4]
            attribution = {"channel": _channel(rec[L_ATTRIB][0][2])[0]}
            if source:
                attribution |= {"campaignSource": source, "campaignMedium": medium or ""}
            if campaign:
                attribution["campaignName"] = campaign
            out["attribution"] = attribution
        if insights and ms >= INSIGHTS_DAY:
            salt = rec[L_SALT]
            spec = APP_SPECS[rec[L_APP]]
            evaluated = ins is not None or ltype == EVALUATION
            out["evaluationOpportunitySize"] = (
                OPPORTUNITY_SIZES[(salt >> 4) % 4] if evaluated and hosting == CLOUD else "NA"
            )
            if ins is not None:
                out["evaluationLicense"] = out["licenseId"]
                out["evaluationStartDate"] = iso(ins[0])
                out["evaluationEndDate"] = iso(ins[1])
                if ins[2] >= 0:
                    out["daysToConvertEval"] = str(ins[2] - ins[0])
                    out["evaluationSaleDate"] = iso(ins[2])
            if hosting == CLOUD:
                out["parentProductBillingCycle"] = BILLING[(salt >> 8) % 2]
                out["parentProductName"] = spec[3]
                out["parentProductEdition"] = CLOUD_EDITIONS[(salt >> 10) % 3]
                out["installedOnSandbox"] = "Yes" if salt & 1 else "No"
            else:
                out["parentProductBillingCycle"] = "NA"
                out["parentProductName"] = spec[3]
                out["parentProductEdition"] = "NA"
                out["installedOnSandbox"] = "NA"
        return out

    def transaction(
        self,
        rec: tuple[Any, ...],
        t: tuple[int, ...],
        day: int,
        ids: dict[str, str],
        cust: dict[str, Any],
    ) -> dict[str, Any]:
        hosting = rec[L_HOST]
        out: dict[str, Any] = {
            "transactionId": f"AT-{10_000_000 + rec[L_NO] // 2}{t[T_K]:04d}",
            "transactionLineItemId": str(t[T_LINE]),
        }
        out |= ids
        if t[T_FLAGS] & F_EDITIONED:
            out["appEdition"] = "Advanced" if t[T_FLAGS] & F_ADVANCED else "Standard"
        if hosting == DC and t[T_SALE] >= DC_ENTITLEMENT_DAY:
            out["appEntitlementNumber"] = f"E-{4_000_000 + rec[L_NO]}"
        last = t[T_SALE]
        rewritten = 0 < t[T_REWRITE] <= day
        refunded = 0 < t[T_REFUNDED] <= day
        if rewritten:
            last = max(last, t[T_REWRITE])
        if refunded:
            last = max(last, t[T_REFUNDED])
        out["lastUpdated"] = iso(last)
        stype = t[T_TYPE]
        if stype != REFUND:
            out["paymentStatus"] = "Refunded" if refunded else "Paid"
        out["customerDetails"] = {k: dict(v) if isinstance(v, dict) else v for k, v in cust.items()}
        pd: dict[str, Any] = {
            "saleDate": iso(t[T_SALE]),
            "licenseType": LICENSE_TYPES[t[T_LTYPE]],
            "hosting": HOSTINGS[hosting],
            "billingPeriod": BILLING[t[T_BILL]],
        }
        flags = t[T_FLAGS]
        if flags & F_SWITCH:
            pd["changeInBillingPeriod"] = "Yes"
            pd["oldBillingPeriod"] = "Monthly"
        pd["tier"] = tier_name(t[T_USERS])
        if t[T_OLD] >= 0 and t[T_OLD] != t[T_USERS]:
            pd["changeInTier"] = "Increase" if t[T_USERS] > t[T_OLD] else "Decrease"
            pd["oldTier"] = tier_name(t[T_OLD])
        spec = APP_SPECS[rec[L_APP]]
        pd["parentProductName"] = spec[3]
        if hosting == CLOUD:
            edition = CLOUD_EDITIONS[(rec[L_SALT] >> 10) % 3]
            if rewritten:
                # The API rewrites history: the parent edition flaps with no real change.
                new = "Premium" if edition == "Standard" else "Enterprise"
                pd["parentProductEdition"] = new
                pd["changeInParentProductEdition"] = "Yes"
                pd["oldParentProductEdition"] = edition
            else:
                pd["parentProductEdition"] = edition
        pd["purchasePrice"] = t[T_PRICE] / 100
        pd["vendorAmount"] = t[T_VENDOR] / 100
        discounts = discount_cents(t[T_LIST], flags) if stype != REFUND else {}
        if "EXPERT" in discounts:
            pd["partnerDiscountAmount"] = discounts["EXPERT"] / 100
        if discounts:
            items = []
            for kind, cents in discounts.items():
                item: dict[str, Any] = {"type": kind, "amount": cents / 100}
                if kind == "MARKETPLACE_PROMOTION":
                    item["code"] = f"PROMO{(rec[L_CUST] >> 20) % 90 + 10}"
                elif kind == "MANUAL":
                    item["reason"] = "Négocié par l'équipe commerciale"
                items.append(item)
            pd["discounts"] = items
        if stype == REFUND:
            pd["refundReason"] = REFUND_REASONS[(rec[L_CUST] + t[T_K]) % 3]
        pd["saleType"] = SALE_TYPES[stype]
        pd["maintenanceStartDate"] = iso(t[T_MS])
        pd["maintenanceEndDate"] = iso(t[T_ME])
        if flags & F_NET30:
            pd["paymentTerms"] = "Net30"
        if stype == REFUND:
            pd["originalTransactionDetails"] = {
                "transactionId": f"AT-{10_000_000 + rec[L_NO] // 2}{t[T_ORIG_K]:04d}",
                "saleDate": iso(t[T_ORIG_SALE]),
            }
        out["purchaseDetails"] = pd
        if rec[L_PARTNER] >= 0:
            pname, ptype = PARTNERS[rec[L_PARTNER]]
            out["partnerDetails"] = {"partnerName": pname, "partnerType": ptype}
        return out

    def feedback(self, rec: tuple[Any, ...], f: tuple[int, int, int, int]) -> dict:
        day, ftype, reason, salt = f
        app = self.apps[rec[L_APP]]
        hosting = rec[L_HOST]
        years = day // 365
        out: dict[str, Any] = {
            "addonKey": app.addon_key,
            "addonName": app.name,
            "addonVersion": f"{1 + years}.{salt % 12}.{(salt >> 4) % 20}",
            "applicationKey": APP_SPECS[rec[L_APP]][3].lower(),
            "applicationVersion": "1000.0.0" if hosting == CLOUD else f"{7 + years}.{salt % 5}.0",
            "hosting": HOSTINGS[hosting],
            "date": iso(day),
            "feedbackType": FEEDBACK_TYPES[ftype],
            "reasonKey": REASONS[reason],
        }
        if salt % 5:
            out["message"] = MESSAGES[(salt >> 8) % len(MESSAGES)]
        who = (salt >> 12) % 10
        if who < 6:
            name, handle = PEOPLE[(salt >> 16) % len(PEOPLE)]
            out["email"] = f"{handle}@example{(salt >> 20) % 997}.com"
            out["fullName"] = name
        elif who < 7:
            out["email"] = out["fullName"] = "RTBF"
        ids = self.ids(rec)
        out["licenseId"] = ids["licenseId"]
        for key in ("appEntitlementId", "appEntitlementNumber", "cloudId"):
            if key in ids:
                out[key] = ids[key]
        return out

    def attribution(self, rec: tuple[Any, ...], a: tuple[int, int, int]) -> dict:
        _, ts, salt = a
        channel, source, medium, campaign, domain = _channel(salt)
        app = self.apps[rec[L_APP]]
        ids = self.ids(rec)
        out: dict[str, Any] = {"addonLicenseId": ids["addonLicenseId"]}
        if "appEntitlementId" in ids:
            out["appEntitlementId"] = ids["appEntitlementId"]
            out["appEntitlementNumber"] = ids["appEntitlementNumber"]
        out["addonKey"] = app.addon_key
        out["channel"] = channel
        if domain:
            out["referrerDomain"] = domain
        url = f"https://marketplace.atlassian.com/apps/{1_200_000 + rec[L_APP]}/{app.addon_key}"
        if source:
            url += f"?utm_source={source}&utm_medium={medium}"
            out["campaignSource"] = source
            out["campaignMedium"] = medium
            if campaign:
                url += f"&utm_campaign={campaign}"
                out["campaignName"] = campaign
                out["campaignContent"] = "hero-banner" if salt % 2 else "sidebar"
        out["marketplaceURL"] = url
        stamp = datetime(EPOCH.year, EPOCH.month, EPOCH.day) + timedelta(seconds=ts)
        out["eventTimestamp"] = f"{stamp.isoformat()}.000Z"
        out["userId"] = f"{mix64(salt ^ rec[L_CUST]):016x}{mix64(salt):016x}"
        out["userType"] = "admin" if salt % 3 else "requester"
        return out


def _channel(salt: int) -> tuple[str, str | None, str | None, str | None, str | None]:
    channel, domain, source, medium, campaign = CHANNELS[(salt >> 3) % len(CHANNELS)]
    return channel, source, medium, campaign, domain
