//! The texts people read when a job ends (inbox, email, webhook payload), in
//! en-US, fr-FR and ko-KR, chosen by the job's locale with en-US as fallback. Pure.

use crate::jobs::JobState;

/// A language the messages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    EnUs,
    FrFr,
    KoKr,
}

impl Lang {
    /// The BCP 47 tag of the texts.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::EnUs => "en-US",
            Lang::FrFr => "fr-FR",
            Lang::KoKr => "ko-KR",
        }
    }
}

/// The language for a job's locale: matched on the language subtag, so `fr`,
/// `fr-FR`, `fr-CA` and `fr_BE` give French; anything else (or none) gives en-US.
pub fn choose(locale: Option<&str>) -> Lang {
    let primary = locale
        .unwrap_or("")
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match primary.as_str() {
        "fr" => Lang::FrFr,
        "ko" => Lang::KoKr,
        _ => Lang::EnUs,
    }
}

/// What a job-ended message says about the job.
#[derive(Debug, Clone)]
pub struct JobEnded<'a> {
    pub id: &'a str,
    pub name: Option<&'a str>,
    pub job_type: &'a str,
    pub state: JobState,
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub error: Option<&'a str>,
    /// Where to see the job, when the server knows its public URL.
    pub link: Option<String>,
}

/// A localized text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The tag of the language it is written in.
    pub locale: &'static str,
    pub subject: String,
    pub body: String,
}

/// The words of one language: the subject, the summary line, and the labels
/// before the error and the link.
struct Words {
    subject: String,
    summary: String,
    error: &'static str,
    details: &'static str,
}

fn words(lang: Lang, job: &JobEnded<'_>) -> Words {
    let name = job.name.unwrap_or(job.id);
    let (kind, t, s, f) = (job.job_type, job.total, job.succeeded, job.failed);
    let state = job.state;
    match lang {
        Lang::EnUs => {
            let verb = match state {
                JobState::Complete => "completed",
                JobState::Failed => "failed",
                _ => "was cancelled",
            };
            Words {
                subject: format!("Job {name} {verb}"),
                summary: format!(
                    "Your {kind} job {name} {verb}: {s} of {t} items succeeded, {f} failed."
                ),
                error: "Error: ",
                details: "Details: ",
            }
        }
        Lang::FrFr => {
            let verb = match state {
                JobState::Complete => "est terminée",
                JobState::Failed => "a échoué",
                _ => "a été annulée",
            };
            Words {
                subject: format!("La tâche {name} {verb}"),
                summary: format!(
                    "Votre tâche {kind} « {name} » {verb} : {s} éléments réussis sur {t}, {f} en échec."
                ),
                error: "Erreur : ",
                details: "Détails : ",
            }
        }
        Lang::KoKr => {
            let (short, verb) = match state {
                JobState::Complete => ("완료", "완료되었습니다"),
                JobState::Failed => ("실패", "실패했습니다"),
                _ => ("취소됨", "취소되었습니다"),
            };
            Words {
                subject: format!("작업 {name} {short}"),
                summary: format!(
                    "{kind} 작업 {name}이(가) {verb}: 항목 {t}개 중 {s}개 성공, {f}개 실패."
                ),
                error: "오류: ",
                details: "자세히: ",
            }
        }
    }
}

/// The message for a job that reached a final state, in the job's language.
pub fn job_ended(job: &JobEnded<'_>, locale: Option<&str>) -> Message {
    let lang = choose(locale);
    let w = words(lang, job);
    let mut body = w.summary;
    if let Some(e) = job.error {
        body.push('\n');
        body.push_str(w.error);
        body.push_str(e);
    }
    if let Some(link) = &job.link {
        body.push('\n');
        body.push_str(w.details);
        body.push_str(link);
    }
    body.push('\n');
    Message {
        locale: lang.tag(),
        subject: w.subject,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState) -> JobEnded<'static> {
        JobEnded {
            id: "0193-abc",
            name: Some("nightly"),
            job_type: "delete",
            state,
            total: 5,
            succeeded: 4,
            failed: 1,
            error: None,
            link: None,
        }
    }

    #[test]
    fn locales_fall_back_to_english_and_match_the_language() {
        for (tag, lang) in [
            (Some("fr-FR"), Lang::FrFr),
            (Some("fr"), Lang::FrFr),
            (Some("fr-CA"), Lang::FrFr),
            (Some("FR_be"), Lang::FrFr),
            (Some("ko-KR"), Lang::KoKr),
            (Some("ko"), Lang::KoKr),
            (Some("en-GB"), Lang::EnUs),
            (Some("de-DE"), Lang::EnUs),
            (Some("free"), Lang::EnUs),
            (Some(""), Lang::EnUs),
            (None, Lang::EnUs),
        ] {
            assert_eq!(choose(tag), lang, "{tag:?}");
        }
    }

    #[test]
    fn texts_per_language_and_state() {
        let m = job_ended(&job(JobState::Complete), Some("fr-FR"));
        assert_eq!(m.locale, "fr-FR");
        assert_eq!(m.subject, "La tâche nightly est terminée");
        assert_eq!(
            m.body,
            "Votre tâche delete « nightly » est terminée : 4 éléments réussis sur 5, 1 en échec.\n"
        );
        let m = job_ended(&job(JobState::Failed), Some("ko-KR"));
        assert_eq!(m.locale, "ko-KR");
        assert_eq!(m.subject, "작업 nightly 실패");
        assert_eq!(
            m.body,
            "delete 작업 nightly이(가) 실패했습니다: 항목 5개 중 4개 성공, 1개 실패.\n"
        );
        let m = job_ended(&job(JobState::Cancelled), Some("de"));
        assert_eq!(m.locale, "en-US");
        assert_eq!(m.subject, "Job nightly was cancelled");
        assert_eq!(
            m.body,
            "Your delete job nightly was cancelled: 4 of 5 items succeeded, 1 failed.\n"
        );
    }

    #[test]
    fn unnamed_jobs_use_the_id_and_errors_and_links_are_added() {
        let mut j = job(JobState::Failed);
        j.name = None;
        j.error = Some("too many failures");
        j.link = Some("http://wasmq.example/api/v1/jobs/0193-abc".into());
        let m = job_ended(&j, Some("fr"));
        assert_eq!(m.subject, "La tâche 0193-abc a échoué");
        assert!(
            m.body.ends_with(
                "\nErreur : too many failures\nDétails : http://wasmq.example/api/v1/jobs/0193-abc\n"
            ),
            "{}",
            m.body
        );
    }
}
