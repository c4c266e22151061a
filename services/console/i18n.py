"""Labels in zh-CN (the policy texts' own terms) and English, and how amounts are written.

One dictionary: a label key maps to (zh-CN, en). Codes of the ledger (funds,
statuses, event types, rejection codes) are labelled through `code()`, which
falls back to the code itself, so a new code shows up raw rather than failing.
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"
LANG_COOKIE = "console_lang"

LABELS: dict[str, tuple[str, str]] = {
    # frame
    "app": ("医保基金监管台账", "Claims ledger supervision"),
    "skip": ("跳到正文", "Skip to content"),
    "nav.overview": ("概览", "Overview"), "nav.person": ("人员年度", "Person-year"),
    "nav.audits": ("稽核", "Audits"), "nav.funds": ("基金流向", "Fund flows"),
    "nav.warnings": ("预警", "Warnings"), "nav.dead_letters": ("死信", "Dead letters"),
    "logout": ("退出登录", "Log out"), "role": ("角色", "Role"),
    "role.supervisor": ("监管人员", "supervisor"), "role.admin": ("管理员", "admin"),
    "lag": ("投影延迟", "Projection lag"), "lag.unit": ("条消息", "messages"),
    "other_lang": ("English", "中文"),
    # login
    "login.title": ("登录", "Log in"), "login.token": ("访问令牌", "Access token"),
    "login.hint": ("粘贴监管人员或管理员令牌（tokens.json 中的 supervisor 或 admin）。",
                   "Paste a supervisor or admin token (supervisor or admin in tokens.json)."),
    "login.submit": ("登录", "Log in"), "login.bad": ("令牌无效。", "That token is not valid."),
    "login.platform": ("平台令牌不能登录监管台。", "The platform token cannot open the console."),
    # overview
    "overview.title": ("概览", "Overview"), "decisions.today": ("今日决定", "Decisions today"),
    "decisions.year": ("本年决定", "Decisions this year"), "warnings.active": ("有效预警", "Active warnings"),
    "dl.pending": ("待处理死信", "Dead letters waiting"), "dl.failed": ("重投失败", "Redrives failed"),
    "paid_by_month": ("按基金和月份的支付", "Paid by fund and month"),
    "chain": ("哈希链校验", "Hash-chain verification"), "chain.never": ("本次运行尚未校验。", "Not verified since start."),
    "chain.running": ("校验中…", "Verifying…"), "chain.ok": ("完整", "intact"), "chain.broken": ("断裂", "broken"),
    "chain.run": ("立即校验", "Verify now"), "chain.first_break": ("第一处断裂", "First break"),
    "chain.person": ("本人哈希链", "This person's chain"),
    "events": ("事件", "events"), "persons": ("人", "persons"), "at": ("于", "at"),
    # person
    "person.title": ("人员年度", "Person-year"), "person.search": ("按人员编号查找", "Find by person number"),
    "psn_no": ("人员编号 psn_no", "Person number psn_no"), "year": ("年度", "Year"), "find": ("查找", "Find"),
    "person_key": ("人员密钥", "Person key"), "area": ("统筹区 admdvs", "Area admdvs"),
    "insutype": ("险种", "Insurance type"), "pack": ("政策包", "Policy pack"), "version": ("版本", "version"),
    "cap": ("年度救助限额", "Annual assistance cap"), "limit": ("限额", "Limit"), "used": ("已用", "Used"),
    "remaining": ("剩余", "Remaining"), "no_cap": ("无年度救助限额", "No annual cap"),
    "inpatient": ("住院救助", "Inpatient assistance"), "outpatient": ("门诊救助", "Outpatient assistance"),
    "grants": ("倾斜救助", "Tilted grants"), "stay": ("住院", "inpatient"), "visit": ("门诊", "outpatient"),
    "ci": ("大病保险", "Critical-illness insurance"), "deductible": ("起付线", "Deductible"),
    "ci.base": ("累计个人自付", "Cumulative out-of-pocket"), "ci.paid": ("大病保险已付", "大病 paid"),
    "progress": ("进度", "Progress"), "subsidy": ("资助参保", "Premium subsidy"),
    "statuses": ("救助身份及有效期", "Statuses and validity"),
    "status.applied": ("适用身份（就高不就低）", "Status applied (就高不就低)"),
    "status": ("身份", "Status"), "valid_from": ("起", "From"), "valid_to": ("止", "To"),
    "granted": ("认定", "granted"), "revoked": ("取消", "revoked"), "source_dept": ("认定部门", "Department"),
    "doc_no": ("文号", "Document"), "open_ended": ("长期", "open"),
    "settlements": ("本年结算", "Settlements this year"), "warnings": ("预警", "Warnings"),
    "trail": ("审计轨迹", "Audit trail"), "hash": ("哈希", "Hash"), "prev_hash": ("前一哈希", "Previous hash"),
    "type": ("类型", "Type"), "seq": ("序号", "Seq"), "more": ("更多", "More"), "none": ("无", "None"),
    "other_years": ("其他年度", "Other years"),
    # settlement
    "settlement.title": ("结算单", "Settlement"), "waterfall": ("三重制度分担", "三重 waterfall"),
    "total": ("医疗总费用", "Total cost"), "basic": ("基本医保", "Basic insurance"), "oth": ("其他支付", "Other"),
    "assistance": ("医疗救助", "Medical assistance"), "hospital": ("医院负担", "Hospital-borne"),
    "person_pays": ("个人负担", "Person pays"), "lines": ("支付明细", "Lines"), "fund": ("基金", "Fund"),
    "rule": ("规则", "Rule"), "clause": ("条款", "Clause"), "base": ("计算基数", "Base"), "ratio": ("比例", "Ratio"),
    "threshold": ("起付线/门槛", "Threshold"), "formula": ("公式结果", "Formula"), "amount": ("金额", "Amount"),
    "kind": ("类别", "Kind"), "adjustments": ("补付调整", "Adjustments"), "cancelled": ("已撤销", "Cancelled"),
    "cancellation": ("撤销", "Cancellation"), "not_cancelled": ("未撤销", "Not cancelled"),
    "decided_under": ("决定依据", "Decided under"), "med_type": ("医疗类别", "Medical type"),
    "enddate": ("结算日期", "Date"), "medins": ("定点医疗机构", "Hospital"), "dise": ("病种", "Diagnosis"),
    "maf_adjusted": ("后续补付", "Paid later"), "reversal": ("冲销", "reversal"), "payment": ("支付", "payment"),
    "adjustment": ("调整", "adjustment"),
    # audits
    "audits.title": ("稽核回放", "Audit replay"), "audits.new": ("新建稽核", "New audit"),
    "from": ("起始日期", "From"), "to": ("截止日期", "To"), "as_of": ("截至时点（北京时间）", "As of (UTC+8)"),
    "pack_dir": ("历史政策包版本", "Archived pack version"), "what_if_dir": ("假设政策包", "What-if pack set"),
    "override": ("假设参数", "What-if parameter"), "override.pack": ("政策包", "Pack"),
    "override.path": ("参数路径", "Parameter path"), "override.value": ("参数值", "Value"),
    "shipped": ("随附政策包", "shipped packs"), "start": ("开始稽核", "Start audit"),
    "recent": ("最近的稽核", "Recent audits"), "job": ("稽核任务", "Audit job"), "scope": ("范围", "Scope"),
    "state": ("状态", "State"), "done": ("完成", "done"), "differences": ("差异", "Differences"),
    "paid": ("已付", "Paid"), "recomputed": ("重算", "Recomputed"), "delta": ("差额", "Delta"),
    "note": ("说明", "Note"), "key": ("对象", "Key"), "csv": ("下载 CSV", "Download CSV"),
    "report": ("打印报告", "Printable report"), "print": ("打印", "Print"), "totals": ("合计", "Totals"),
    "compared": ("比对的决定", "Decisions compared"), "no_differences": ("没有差异。", "No differences."),
    "shown_first": ("仅显示前 {n} 条，全部见 CSV。", "Only the first {n} are shown; the CSV has them all."),
    "audit.error": ("稽核失败", "Audit failed"),
    "job.queued": ("排队中", "queued"), "job.running": ("运行中", "running"), "job.done": ("完成", "done"),
    "job.failed": ("失败", "failed"),
    # funds, warnings, dead letters
    "funds.title": ("基金流向", "Fund flows"), "month": ("月份", "Month"), "month_from": ("起始月份", "From month"),
    "month_to": ("截止月份", "To month"), "filter": ("筛选", "Filter"), "all": ("全部", "all"),
    "warnings.title": ("因病返贫致贫预警", "Illness-poverty warnings"), "code": ("代码", "Code"),
    "figure": ("数值", "Figure"), "standing": ("状态", "Standing"), "active": ("有效", "active"),
    "withdrawn": ("已撤回", "withdrawn"),
    "dl.title": ("死信（无法决定的消息）", "Dead letters (messages not decided)"), "reason": ("原因", "Reason"),
    "raw": ("原始消息", "Raw message"), "redrive": ("重新投递", "Re-drive"), "redrives": ("重投记录", "Redrives"),
    "source": ("来源", "Source"), "msg_type": ("消息类型", "Message type"), "recorded": ("记录时间", "Recorded"),
    "redrive_state": ("重投状态", "Redrive state"), "outcome": ("结果", "Outcome"),
    "dl.state.pending": ("待处理", "pending"), "dl.state.redriven": ("已重投", "redriven"),
    "dl.state.failed": ("重投失败", "failed"),
    # errors
    "error": ("出错了", "Something went wrong"), "error.403": ("无权执行此操作。", "You may not do that."),
    "error.404": ("没有找到。", "Not found."), "back": ("返回概览", "Back to the overview"),
}

CODES: dict[str, tuple[str, str]] = {
    # funds
    "basic": ("基本医保", "basic insurance"), "critical_illness": ("大病保险", "critical-illness insurance"),
    "assistance": ("医疗救助", "medical assistance"), "hospital": ("医院负担", "hospital-borne"),
    "subsidy": ("资助参保", "premium subsidy"), "grant": ("倾斜救助", "tilted grant"),
    # statuses (policy.md §2)
    "tekun": ("特困人员", "tekun"), "orphan": ("孤儿", "orphan"), "de_facto_orphan": ("事实无人抚养儿童", "de-facto orphan"),
    "hiv_child": ("艾滋病病毒感染儿童", "HIV-infected child"), "dibao": ("低保对象", "dibao"),
    "severe_disability": ("重度残疾人", "severe disability"), "key_entitled": ("重点优抚对象", "key entitled"),
    "low_income": ("低收入家庭成员", "low income"), "dibao_marginal": ("低保边缘家庭成员", "dibao marginal"),
    "expenditure_poverty": ("支出型贫困家庭成员", "expenditure poverty"),
    "rural_at_risk": ("农村易返贫致贫人口", "rural at risk"), "returned_poverty": ("返贫致贫人口", "returned to poverty"),
    "low_income_elderly": ("低收入家庭中六十周岁以上的老年人", "low-income elderly"),
    "low_income_minor": ("低收入家庭中的未成年人", "low-income minor"), "at_risk": ("易返贫致贫人口", "at risk"),
    "stable_out_of_poverty": ("稳定脱贫人口", "stably out of poverty"),
    "low_income_applicant": ("低收入救助对象", "low-income applicant"),
    "illness_poverty": ("因病致贫家庭重病患者", "illness poverty"),
    "monitored_hardship": ("纳入监测范围的刚性支出困难对象", "monitored hardship"),
    # event types
    "status_granted": ("身份认定", "status granted"), "status_revoked": ("身份取消", "status revoked"),
    "enrolment_recorded": ("参保登记", "enrolment recorded"), "premium_subsidy_granted": ("资助参保", "premium subsidy"),
    "hospital_stay_settled": ("住院结算", "hospital stay settled"),
    "outpatient_visit_settled": ("门诊结算", "outpatient visit settled"),
    "critical_illness_paid": ("大病保险支付", "critical illness paid"), "assistance_paid": ("医疗救助支付", "assistance paid"),
    "hospital_borne": ("医院负担", "hospital borne"), "settlement_cancelled": ("结算撤销", "settlement cancelled"),
    "payment_reversed": ("支付冲销", "payment reversed"), "tilted_grant_paid": ("倾斜救助支付", "tilted grant paid"),
    "warning_raised": ("预警", "warning raised"), "quota_year_settled": ("限额年终结算", "quota year settled"),
    "medins_recorded": ("医疗机构登记", "hospital recorded"), "year_closed": ("年度关闭", "year closed"),
    "pack_activated": ("政策包启用", "pack activated"), "message_rejected": ("消息拒收", "message rejected"),
}


def choose_lang(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """`?lang=` first, then the remembered choice, then the browser's languages; zh-CN when nothing matches."""
    for given in (query, cookie):
        found = _match(given)
        if found:
            return found
    ranked = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag))
    for _, _, tag in sorted(ranked):
        found = _match(tag)
        if found:
            return found
    return DEFAULT_LANG


def _match(tag: str | None) -> str | None:
    primary = (tag or "").strip().lower().split("-")[0]
    return {"zh": "zh-CN", "en": "en"}.get(primary)


def translator(lang: str) -> Callable[..., str]:
    i = LANGS.index(lang)

    def t(key: str, **values: Any) -> str:
        text = LABELS[key][i]
        return text.format(**values) if values else text
    return t


def code_labeller(lang: str) -> Callable[[str | None], str]:
    i = LANGS.index(lang)

    def code(value: str | None) -> str:
        if value is None:
            return "—"
        return CODES[value][i] if value in CODES else value
    return code


_CENT = Decimal("0.01")


def money(value: Any) -> str:
    """12,345.60 — two decimals, ROUND_HALF_UP, thousands separated; nothing (None, a missing field) is a dash."""
    text = "" if value is None else str(value)
    if not text:
        return "—"
    return f"{Decimal(text).quantize(_CENT, rounding=ROUND_HALF_UP):,}"


def percent(value: Any) -> str:
    """A ratio as a percentage: 0.7 -> 70%, 0.125 -> 12.5%."""
    text = "" if value is None else str(value)
    if not text:
        return "—"
    text = f"{Decimal(text) * 100:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "%"
